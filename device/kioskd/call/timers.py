"""The call machine's timers on the event loop: each fires as a `TimerFired` event.

A timer is named per call (ring, connect, grace, ...); starting one that runs restarts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from . import events as ev


class CallTimers:
    def __init__(self, post: Callable[[ev.Event], None]) -> None:
        self._post = post
        self._handles: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._handles

    def start(self, name: str, delay_s: float, call_id: str) -> None:
        self.cancel(name, call_id)
        self._handles[(name, call_id)] = asyncio.get_running_loop().call_later(
            delay_s, self._fire, name, call_id)

    def _fire(self, name: str, call_id: str) -> None:
        self._handles.pop((name, call_id), None)
        self._post(ev.TimerFired(name, call_id))

    def cancel(self, name: str, call_id: str) -> None:
        handle = self._handles.pop((name, call_id), None)
        if handle is not None:
            handle.cancel()

    def cancel_call(self, call_id: str) -> None:
        for name, owner in [key for key in self._handles if key[1] == call_id]:
            self.cancel(name, owner)

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
