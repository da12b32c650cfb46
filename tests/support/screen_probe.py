"""Test eyes on a KioskScreen, through its one hook (`KioskScreen.observe`).

    probe = ScreenProbe(screen)        # any time; it watches from the next pass on
    await probe.wait_for_screen(view.IDLE)
    probe.layout().buttons             # what the last pass left on the display
    pixels = await probe.snapshot()

The waits end on the render thread's own word (an observer called after each pass), never by
polling; each raises asyncio.TimeoutError after its timeout, saying what it saw. Snapshots
and screenshots are taken on the render thread, which owns the pixels.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pygame

from kioskd.handoff import call_soon
from kioskd.ui import KioskScreen
from kioskd.ui.display import RenderPass

T = TypeVar("T")


class ScreenProbe:
    """Waits on, and looks at, what a KioskScreen's render thread drew."""

    def __init__(self, screen: KioskScreen) -> None:
        self.screen = screen
        self._last: RenderPass | None = None
        screen.observe(self._record)

    def _record(self, report: RenderPass) -> bool:
        # The surface is the display's own and only valid during the call: not kept.
        self._last = RenderPass(None, report.screen, report.layout)
        return False  # for the screen's whole life

    def layout(self) -> Any:
        """The last drawn screen's `painting.Drawn`: its buttons and named regions."""
        return None if self._last is None else self._last.layout

    async def wait_for_screen(self, name: str, timeout: float = 10.0) -> None:
        """Until the screen called `name` (view.IDLE, ...) is the one on the display."""
        await self._after_pass(lambda report: None, timeout,
                               until=lambda report: report.screen == name,
                               describe=lambda: f"screen is {self._seen()}, not {name}")

    async def wait_for_rendered(self, frames: int, timeout: float = 10.0,
                                sink: Any = None) -> None:
        """Until `frames` remote frames have been drawn in all, or since `sink` (a ScreenSink)
        started when it is given."""
        def rendered() -> int:
            return self.screen.rendered_frames if sink is None else sink.rendered_frames

        await self._after_pass(lambda report: None, timeout,
                               until=lambda report: rendered() >= frames,
                               describe=lambda: f"rendered {rendered()}/{frames} frames")

    async def wait_for_draw(self, timeout: float = 10.0) -> None:
        """Until the screen has been drawn again, after everything handed over before.

        The current View is handed over again: a View handed over is drawn by the pass that
        takes it, and that pass takes everything handed over before it.
        """
        self.screen.update(self.screen.view)
        await self._after_pass(lambda report: None, timeout, describe=lambda: "no redraw")

    async def snapshot(self, timeout: float = 10.0) -> np.ndarray:
        """What the display shows now, as a height x width x 3 RGB uint8 array."""
        def copy(report: RenderPass) -> np.ndarray:
            pixels = pygame.surfarray.array3d(report.surface).transpose(1, 0, 2)
            return np.ascontiguousarray(pixels)

        return await self._after_pass(copy, timeout, describe=lambda: "no pass for a snapshot")

    async def save_screenshot(self, path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        """What the display shows now, as a PNG (or any format pygame.image.save knows)."""
        target = os.fspath(path)
        await self._after_pass(lambda report: pygame.image.save(report.surface, target),
                               timeout, describe=lambda: "no pass for a screenshot")

    def _seen(self) -> str | None:
        return None if self._last is None else self._last.screen

    async def _after_pass(self, action: Callable[[RenderPass], T], timeout: float, *,
                          until: Callable[[RenderPass], bool] = lambda report: True,
                          describe: Callable[[], str]) -> T:
        """`action(report)` on the render thread after the first pass (from the next one on)
        for which `until(report)` holds; its result, or what it raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def observer(report: RenderPass) -> bool:
            if future.done():  # the waiter gave up
                return True
            try:
                if not until(report):
                    return False
                call_soon(loop, _settle, future, action(report), None)
            except Exception as exc:  # noqa: BLE001  (handed to the waiter, who raises it)
                call_soon(loop, _settle, future, None, exc)
            return True

        self.screen.observe(observer)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"{describe()} after {timeout} s") from None


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
