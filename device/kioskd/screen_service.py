"""The kiosk's screen as a daemon component: opened once, at start, for the daemon's life.

No screen must not mean no calls: a display that cannot be opened leaves a headless kiosk
that answers calls and says why (the problem "display.mode"). A screen that dies later takes
the daemon down (`run` raises), so that systemd restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .config import Config
from .media import registry
from .media.measure import MeasuringSink
from .media.problems import Problems

log = logging.getLogger(__name__)


class ScreenService:
    name = "screen"

    def __init__(self, config: Config, on_command: Callable[[str], None],
                 problems: Problems,
                 screen_fps: Callable[[], float | None] | None = None) -> None:
        self._config = config
        self._screen_fps = screen_fps  # the most a call's video may be drawn, now
        self._on_command = on_command
        self._problems = problems
        self.screen: Any = None  # ui.KioskScreen once open; None when headless

    async def start(self) -> None:
        if self._config.display.mode == "none":
            return
        from .ui import KioskScreen  # the screen's modules only when there is a screen

        screen = KioskScreen.from_config(self._config, self._on_command)
        try:
            await screen.start()
        except Exception as exc:
            log.error("%s; kioskd runs without a screen", exc)
            self._problems.set("display.mode", "failed", str(exc))
            return
        self.screen = screen

    async def run(self) -> None:
        """Until the daemon stops; raises if the screen's thread dies."""
        if self.screen is None:
            await asyncio.Event().wait()
        await self.screen.wait_closed()

    async def stop(self) -> None:
        screen, self.screen = self.screen, None
        if screen is not None:
            await screen.stop()

    def new_video_sink(self) -> MeasuringSink:
        """One call's sink for the caller's video: shown on the screen, or just drained."""
        if self.screen is not None:
            from .ui import make_video_sink

            sink: MeasuringSink = make_video_sink(self.screen, self._screen_fps)
            return sink
        sink = registry.resolve(registry.VIDEO_SINKS, "none")()
        return sink
