"""Starting and stopping the daemon's components.

A component has `name`, `start()` and `stop()`. They start in order; they stop in reverse
order, every one of them, each within STOP_TIMEOUT_S, a failure logged and never raised, so
that a screen that fails to close never keeps the call log from closing. Long-lived work (the
dispatcher, the signaling connection, the watchdog, the screen's thread) runs beside them; the
first of it to end takes the daemon down, so that systemd restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0  # per component; above the runner's own 5 s for hanging up a call


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def start_all(components: Sequence[Component]) -> None:
    """Start each in order; if one fails, stop those already started and raise."""
    for index, component in enumerate(components):
        try:
            await component.start()
        except BaseException:
            await stop_all(components[:index])
            raise


async def stop_all(components: Sequence[Component]) -> None:
    """Stop each, in reverse order, whatever the others do."""
    for component in reversed(components):
        try:
            await asyncio.wait_for(component.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("stopping the %s took more than %.0f s; going on", component.name,
                      STOP_TIMEOUT_S)
        except Exception:
            log.exception("stopping the %s failed; going on", component.name)


async def run_until_one_ends(work: dict[str, Callable[[], Coroutine[Any, Any, None]]]) -> None:
    """Run every long-lived coroutine until cancelled; raise when one of them ends."""
    tasks = [asyncio.create_task(run(), name=name) for name, run in work.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # re-raise what killed it
        raise RuntimeError(f"the {next(iter(done)).get_name()} ended")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
