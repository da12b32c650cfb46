"""The kiosk's screen as the daemon sees it: `KioskScreen`, whose calls all return at once.

The asyncio side never draws and never waits for drawing: `update`, `show_remote`,
`show_preview` and `press` put the newest value in a slot (slots.py) for the render thread
(display.py), which owns SDL for the daemon's whole life. What it draws and when is the
renderer's (renderer.py, painting.py); keys, touch, GPIO buttons and the display's sleep are
interaction.py's; the numbers are stats.py's. Tests and benchmarks watch the render thread
through one hook, `observe`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import av

from .display import DisplayError, DisplayThread
from .interaction import Interaction
from .renderer import VIDEO_FLOWING_S, Renderer
from .slots import Observer, Slots
from .stats import ScreenStats
from .view import View

log = logging.getLogger(__name__)

MODES = ("window", "fullscreen")
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


class KioskScreen:
    """The kiosk's display, input and display power, for the daemon's whole life.

    `mode` is "window" (`width` x `height`, 1280x720 by default) or "fullscreen" (the
    display's size unless both are given; SDL's dummy driver needs them). `preview` shows the
    local camera (`show_preview`) as a picture-in-picture in `preview_corner` during video
    calls. `sleep_after_s` > 0 blanks the display after that long idle; `backlight` ("auto"
    or a bl_power path) also switches the backlight off then. `on_command(command)` is called
    on the asyncio loop for every press; `gpio_pins` maps commands to BCM pins (-1: none).
    """

    def __init__(
        self,
        mode: str = "fullscreen",
        width: int | None = None,
        height: int | None = None,
        *,
        preview: bool = True,
        preview_corner: str = "bottom-right",
        mirror_preview: bool = True,
        sleep_after_s: float = 0.0,
        backlight: str | None = None,
        on_command: Callable[[str], None] | None = None,
        gpio_pins: Mapping[str, int | None] | None = None,
        gpio_pin_factory: Any = None,
        title: str = "kioskd",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f'display mode "{mode}" is not one of {", ".join(MODES)}')
        if preview_corner not in CORNERS:
            raise ValueError(f'preview corner "{preview_corner}" is not one of '
                             f'{", ".join(CORNERS)}')
        self.mode = mode
        self.title = title
        self.preview = preview
        self._remote_at = -1.0  # when the caller's last frame was handed over (monotonic)
        self.preview_corner = preview_corner
        self.sleep_after_s = sleep_after_s
        self.view = View()  # the newest View given to update()
        self.screen_size: tuple[int, int] | None = None
        self.statistics = ScreenStats()
        self._requested_size = (width, height)
        self._slots = Slots()
        self._interaction = Interaction(
            self.statistics, sleep_after_s=sleep_after_s, backlight=backlight,
            on_command=on_command, gpio_pins=gpio_pins, gpio_pin_factory=gpio_pin_factory)
        self._renderer = Renderer(self._interaction, self.statistics, preview=preview,
                                  preview_corner=preview_corner, mirror_preview=mirror_preview)
        self._display: DisplayThread | None = None
        self._closed: asyncio.Future[None] | None = None
        self._shown: asyncio.Future[str] | None = None

    @classmethod
    def from_config(cls, config: Any, on_command: Callable[[str], None] | None = None,
                    **overrides: Any) -> KioskScreen:
        """A screen set up from the [display] and [input] sections of the daemon's config."""
        display, inputs = config.display, config.input
        options: dict[str, Any] = {
            "preview": display.preview,
            "preview_corner": display.preview_corner,
            "sleep_after_s": display.sleep_after_s,
            "backlight": display.backlight or None,
            "on_command": on_command,
            "gpio_pins": {"answer": inputs.gpio_answer_pin, "hangup": inputs.gpio_hangup_pin,
                          "call": inputs.gpio_call_pin},
        }
        options.update(overrides)
        return cls(display.mode, **options)

    # -- handing over: all of these return at once --------------------------------------------

    def update(self, view: View) -> None:
        """Show `view`. Thread-safe; the newest wins."""
        self.view = view
        self._slots.put_view(view)

    def show_remote(self, frame: av.VideoFrame) -> None:
        """The caller's newest video frame. A frame not yet drawn is dropped (counted)."""
        self._remote_at = time.monotonic()
        if self._slots.put_remote(frame):
            self.statistics.dropped_frames += 1

    def show_preview(self, frame: av.VideoFrame) -> None:
        """The local camera's newest frame, for the picture-in-picture."""
        if self.preview:
            # While the caller's video flows, its next frame draws the preview too: waking
            # the screen for each camera frame as well would only cost wake-ups.
            flowing = time.monotonic() - self._remote_at <= VIDEO_FLOWING_S
            self._slots.put_preview(frame, wake=not flowing)

    def show_audio_level(self, dbfs: float | None) -> None:
        """The caller's audio level for the audio-call meter (make_video_sink pushes it)."""
        self._slots.put_audio_level(dbfs)

    def press(self, command: str) -> None:
        """A button press from outside SDL (GPIO, tests): wakes the screen, then the command
        goes to on_command if it means something in the current state. Thread-safe."""
        self._slots.put_press(command)

    def observe(self, observer: Observer) -> None:
        """The hook for tests and benchmarks: `observer(report)` (a display.RenderPass) is
        called on the render thread after every pass, from the pass that takes everything
        handed over before this call, until it returns True. It must be quick; an observer
        that raises is dropped. Thread-safe; wakes the render thread."""
        self._slots.add_observer(observer)

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the display (DisplayError if it can't) and the GPIO buttons (logged if not)."""
        if self._display is not None:
            return
        loop = asyncio.get_running_loop()
        self._shown = loop.create_future()
        self.statistics.started_at = time.monotonic()
        self._interaction.deliver_on(loop)
        self._display = DisplayThread(self._slots, self._renderer, mode=self.mode,
                                      size=self._requested_size, title=self.title,
                                      on_shown=self._first_shown)
        self._closed = self._display.closed
        try:
            self.screen_size = await self._display.open()
        except DisplayError:
            self._display = None
            raise
        log.info("screen open: %s %dx%d", self.mode, *self.screen_size)
        self._interaction.open_gpio(self.press)

    async def wait_shown(self) -> str:
        """Until the display shows its first screen (the self-test's proof); its name."""
        if self._shown is None:
            raise RuntimeError("the screen is not started")
        return await asyncio.shield(self._shown)

    async def wait_closed(self) -> None:
        """Return when the screen has been stopped; raise if its thread died instead.

        For the daemon's long-lived tasks: a screen that stops drawing takes the daemon down,
        so systemd restarts it.
        """
        if self._closed is None:
            raise RuntimeError("the screen is not started")
        await asyncio.shield(self._closed)

    async def stop(self) -> None:
        self._interaction.close_gpio()
        display, self._display = self._display, None
        if display is not None:
            await display.close()

    def _first_shown(self, name: str) -> None:  # on the loop
        if self._shown is not None and not self._shown.done():
            self._shown.set_result(name)

    # -- numbers ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "screen_size": list(self.screen_size) if self.screen_size else None,
            "screen": self._renderer.current_screen,
            "blanked": self._interaction.blanked,
            "gpio_error": self._interaction.gpio_error,
            **self.statistics.report(),
        }

    @property
    def rendered_frames(self) -> int:
        return self.statistics.rendered_frames

    @property
    def dropped_frames(self) -> int:
        return self.statistics.dropped_frames

    @property
    def call_first_rendered_at(self) -> float | None:
        return self.statistics.call_first_rendered_at

    @property
    def screen_latencies_ms(self) -> deque[int]:
        return self.statistics.screen_latencies_ms
