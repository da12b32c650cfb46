"""Waiting on a condition that no event announces (state inside a thread or a fake device)."""

from __future__ import annotations

import asyncio
import time
from typing import Callable


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Check `condition` every 20 ms; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
