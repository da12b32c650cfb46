"""The kiosk's screen: one render thread that owns SDL for the daemon's whole life.

The asyncio side never draws and never waits for drawing. It hands the thread three kinds of
thing, each through a slot that keeps only the newest: the `View` (what to show), the remote
video frame, and the local preview frame. The thread wakes on any of them, on input (polled
every EVENT_POLL seconds) and on its own clock (animations, the clock, countdowns).

Each remote frame is converted and scaled once, in C (libswscale via `frame.reformat`), to
the largest size that fits the screen, straight into the display's own pixel layout when it
is the usual 32-bit XRGB (then one memory copy puts it on screen), else to RGB and blitted.
Overlays (name and duration, mute pills, the preview, the buttons) are drawn on top and the
whole screen is flipped once per frame.

Input (keys, touch, mouse, GPIO buttons) becomes command strings, delivered to the app's
`on_command` on the asyncio loop with call_soon_threadsafe: the thread never calls into app
state. The display blanks after `sleep_after_s` of an idle kiosk and nobody touching it, and
wakes on a call, a touch, a key or a button.

Only pygame.display and pygame.font are initialised (pygame.init() would open ALSA for the
mixer). pygame is imported in the render thread, so importing this module needs no SDL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..media.measure import MeasuringSink, percentiles
from ..media.stamp import latency_ms, read_stamp_from_frame
from ..media.synthetic import wall_clock_ms
from . import view as v
from .view import View



class DisplayError(RuntimeError):
    """The display could not be opened (no X/Wayland/KMS, bad driver, ...)."""


def letterbox(
    frame_size: tuple[int, int], screen_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the largest centred picture with the frame's aspect ratio."""
    frame_w, frame_h = frame_size
    screen_w, screen_h = screen_size
    scale = min(screen_w / frame_w, screen_h / frame_h)
    width = max(1, min(screen_w, round(frame_w * scale)))
    height = max(1, min(screen_h, round(frame_h * scale)))
    return (screen_w - width) // 2, (screen_h - height) // 2, width, height

log = logging.getLogger(__name__)

MODES = ("window", "fullscreen")
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
DEFAULT_WINDOW_SIZE = (1280, 720)
EVENT_POLL = 0.05  # seconds: how often input is read (at most, and when nothing else wakes)
CONTROLS_S = 5.0  # in-call buttons stay this long over the picture after a touch
COST_WINDOW = 300  # frames kept for the render cost percentiles
PREVIEW_FRESH_S = 1.0  # an older preview frame is not shown when a call starts
PREVIEW_FPS = 15  # the picture-in-picture is small: half the camera's rate is enough
# swscale's fast bilinear: 0.43 instead of 0.62 ms to scale 640x480 to 960x720; on a moving
# picture at kiosk distance the difference is not visible.
SCALING = "FAST_BILINEAR"
# One thread: swscale's own slice threads (one per core by default) make it a little quicker
# and cost more CPU in all (0.62 instead of 0.55 ms a 960x720 frame, measured here).
SCALING_THREADS = 1
VIDEO_FLOWING_S = 0.1  # remote frames closer than this carry the preview's updates
LEVEL_FRESH_S = 1.0  # a pushed audio level older than this gives way to the View's
MAX_FAILED_PASSES = 50  # drawing failures in a row before the screen gives up (and says so)
_INIT_TIMEOUT = 10.0
_JOIN_TIMEOUT = 5.0
_BL_POWER_ON, _BL_POWER_OFF = "0", "4"  # FB_BLANK_UNBLANK, FB_BLANK_POWERDOWN


class Backlight:
    """Switches a backlight through sysfs `bl_power` (the Pi touch display has one).

    `path` is a bl_power file, or "auto" for the first /sys/class/backlight/*/bl_power.
    Writing needs permission (a udev rule giving the kioskd user the file, or the video
    group on Raspberry Pi OS); failures are logged once and the screen just goes black.
    """

    def __init__(self, path: str) -> None:
        if path == "auto":
            found = sorted(glob.glob("/sys/class/backlight/*/bl_power"))
            path = found[0] if found else ""
        self.path = path
        self._warned = False

    def set(self, on: bool) -> None:
        if not self.path:
            return
        try:
            with open(self.path, "w") as file:
                file.write(_BL_POWER_ON if on else _BL_POWER_OFF)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot switch the backlight at %s: %s", self.path, exc)
                self._warned = True


SOFTWARE_FRAMEBUFFER_HINT = "SDL_FRAMEBUFFER_ACCELERATION"


def software_framebuffer(driver: str) -> bool:
    """Whether to ask SDL for the display's own framebuffer rather than an OpenGL texture.

    We blit one converted frame per flip. On X11, SDL's default streams the window through an
    OpenGL texture, which without a GPU is Mesa's software llvmpipe (here it cost 0.12 CPU s
    per call second and ~100 MB RSS, docs/measurements.md), while X's shared-memory image is a
    copy. KMS/DRM (a Pi's console) and Wayland have no framebuffer of their own in SDL 2: the
    texture, on the Pi's GPU, is the only way there. An admin can set the variable to decide.
    """
    return driver.lower() == "x11"


def direct_video_ok(surface: Any) -> bool:
    """True if the display's pixels are 32-bit XRGB, B G R X in memory: swscale's "bgra"."""
    return (surface.get_bitsize() == 32 and sys.byteorder == "little"
            and tuple(surface.get_masks()[:3]) == (0xFF0000, 0x00FF00, 0x0000FF))


class _Video:
    """The last remote picture, converted for the screen, and how to put it there."""

    def __init__(self, direct: bool) -> None:
        # direct: the display is 32-bit XRGB in memory order B, G, R, X (little-endian), so
        # swscale's "bgra" is its own layout and a numpy copy is the whole blit.
        self.direct = direct
        self.rect: tuple[int, int, int, int] | None = None
        self._pixels: np.ndarray | None = None
        self._surface: Any = None
        self._reformatter = VideoReformatter()  # keeps its swscale context between frames

    def convert(self, pygame: Any, frame: av.VideoFrame, screen_size: tuple[int, int]) -> None:
        rect = letterbox((frame.width, frame.height), screen_size)
        _, _, width, height = rect
        if self.direct:
            bgra = self._reformatter.reformat(frame, width, height, "bgra", interpolation=SCALING,
                                              threads=SCALING_THREADS).to_ndarray()
            self._pixels = np.ascontiguousarray(bgra).view(np.uint32)[..., 0]
        else:
            rgb = self._reformatter.reformat(frame, width, height, "rgb24", interpolation=SCALING,
                                             threads=SCALING_THREADS)
            # to_ndarray drops the line padding; frombuffer needs contiguous rows.
            self._pixels = np.ascontiguousarray(rgb.to_ndarray())
            self._surface = pygame.image.frombuffer(self._pixels, (width, height), "RGB")
        self.rect = rect

    def paint(self, pygame: Any, surface: Any) -> None:
        assert self.rect is not None and self._pixels is not None
        x, y, width, height = self.rect
        if self.direct:
            target = pygame.surfarray.pixels2d(surface)  # (x, y) indexed, locks the surface
            try:
                target[x:x + width, y:y + height] = self._pixels.T
            finally:
                del target  # unlocks
        else:
            surface.blit(self._surface, (x, y))
        # The bars: overlays may have been drawn there last frame.
        screen_w, screen_h = surface.get_size()
        black = (0, 0, 0)
        if x > 0:
            surface.fill(black, (0, 0, x, screen_h))
            surface.fill(black, (x + width, 0, screen_w - x - width, screen_h))
        if y > 0:
            surface.fill(black, (0, 0, screen_w, y))
            surface.fill(black, (0, y + height, screen_w, screen_h - y - height))

    def clear(self) -> None:
        self.rect = self._pixels = self._surface = None


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
        self.preview_corner = preview_corner
        self.mirror_preview = mirror_preview
        self.sleep_after_s = sleep_after_s
        self.on_command = on_command
        self._requested_size = (width, height)
        self._backlight = Backlight(backlight) if backlight else None
        self._gpio_pins = dict(gpio_pins or {})
        self._gpio_pin_factory = gpio_pin_factory
        self._gpio: Any = None
        self.gpio_error: str | None = None
        self.view = View()  # the newest View given to update()

        # Handed to the render thread, under _lock; _wake says something is there.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pending_view: View | None = None
        self._remote_slot: av.VideoFrame | None = None
        self._preview_slot: av.VideoFrame | None = None
        self._presses: list[str] = []
        self._requests: list[tuple[str, Any, concurrent.futures.Future[Any]]] = []
        self._pushed_level: tuple[float | None, float] = (None, 0.0)
        self._force_redraw = False
        self._redraws_asked = 0  # wait_for_draw: asked for under _lock, done after a flip
        self._redraws_done = 0

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._closed: asyncio.Future[None] | None = None

        # The render thread's own (set there, read by tests through layout()).
        self._drawn: Any = None
        self._view_now = View()
        self._inp: Any = None
        self._screens: Any = None

        # Counters: written by the render thread (dropped_frames under _lock).
        self.screen_size: tuple[int, int] | None = None
        self.current_screen: str | None = None
        self.blanked = False
        self.rendered_frames = 0  # remote video frames on screen
        self.dropped_frames = 0  # remote frames replaced before they were drawn
        self.preview_frames = 0
        self.screens_drawn = 0  # flips of any kind
        self.render_passes = 0  # wake-ups of the render thread, drawing or not
        self.commands_sent = 0
        self.started_at: float | None = None  # time.monotonic() of start()
        self.first_screen_at: dict[str, float] = {}
        self.first_rendered_at: float | None = None
        self.call_first_rendered_at: float | None = None  # reset when a call ends
        self.video_path = ""
        self._stats_lock = threading.Lock()
        self._costs_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._convert_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._draw_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._flip_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self.screen_latencies_ms: deque[int] = deque(maxlen=COST_WINDOW)
        self._rendered_times: deque[float] = deque(maxlen=240)

    @classmethod
    def from_config(cls, config: Any, on_command: Callable[[str], None] | None = None,
                    **overrides: Any) -> KioskScreen:
        """A screen set up from the [display] and [input] sections of the daemon's config."""
        display, inputs = config.display, config.input
        options: dict[str, Any] = dict(
            preview=display.preview,
            preview_corner=display.preview_corner,
            sleep_after_s=display.sleep_after_s,
            backlight=display.backlight or None,
            on_command=on_command,
            gpio_pins={"answer": inputs.gpio_answer_pin, "hangup": inputs.gpio_hangup_pin,
                       "call": inputs.gpio_call_pin},
        )
        options.update(overrides)
        return cls(display.mode, **options)

    # -- the asyncio side: all of these return at once ----------------------------------------

    def update(self, view: View) -> None:
        """Show `view`. Thread-safe; the newest wins."""
        self.view = view
        with self._lock:
            self._pending_view = view
        self._wake.set()

    def show_remote(self, frame: av.VideoFrame) -> None:
        """The caller's newest video frame. A frame not yet drawn is dropped (counted)."""
        with self._lock:
            if self._remote_slot is not None:
                self.dropped_frames += 1
            self._remote_slot = frame
        self._wake.set()

    def show_preview(self, frame: av.VideoFrame) -> None:
        """The local camera's newest frame, for the picture-in-picture."""
        if not self.preview:
            return
        with self._lock:
            self._preview_slot = frame
        self._wake.set()

    def show_audio_level(self, dbfs: float | None) -> None:
        """The caller's audio level for the audio-call meter (make_video_sink pushes it)."""
        self._pushed_level = (dbfs, time.monotonic())

    def press(self, command: str) -> None:
        """A button press from outside SDL (GPIO, tests): wakes the screen, then the command
        goes to on_command if it means something in the current state. Thread-safe."""
        with self._lock:
            self._presses.append(command)
        self._wake.set()

    async def start(self) -> None:
        """Open the display (DisplayError if it can't) and the GPIO buttons (logged if not)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self.started_at = time.monotonic()
        ready: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._render_main, args=(ready,), name="screen",
                                        daemon=True)
        self._thread.start()
        try:
            self.screen_size = await asyncio.wait_for(asyncio.wrap_future(ready), _INIT_TIMEOUT)
        except Exception as exc:
            await self._join()
            self._closed.set_result(None)
            raise DisplayError(f"cannot open the {self.mode} display: {exc}") from exc
        log.info("screen open: %s %dx%d", self.mode, *self.screen_size)
        self._open_gpio()

    async def wait_closed(self) -> None:
        """Return when the screen has been stopped; raise if its thread died instead.

        For the daemon's long-lived tasks: a screen that stops drawing takes the daemon down,
        so systemd restarts it.
        """
        if self._closed is None:
            raise RuntimeError("the screen is not started")
        await asyncio.shield(self._closed)

    async def stop(self) -> None:
        if self._gpio is not None:
            self._gpio.close()
            self._gpio = None
        await self._join()
        for _, _, future in self._take_requests():
            future.cancel()

    async def wait_for_rendered(self, frames: int, timeout: float = 10.0) -> None:
        """Until `frames` remote frames have been drawn in all; TimeoutError after `timeout`."""
        await self._wait_until(lambda: self.rendered_frames >= frames, timeout,
                               lambda: f"rendered {self.rendered_frames}/{frames} frames")

    async def wait_for_screen(self, name: str, timeout: float = 10.0) -> None:
        """Until the screen called `name` (view.IDLE, ...) is the one on the display."""
        await self._wait_until(lambda: self.current_screen == name, timeout,
                               lambda: f"screen is {self.current_screen}, not {name}")

    async def wait_for_draw(self, timeout: float = 10.0) -> None:
        """Until the screen has been drawn again (after everything handed over before)."""
        with self._lock:
            self._force_redraw = True
            self._redraws_asked += 1
            target = self._redraws_asked
        self._wake.set()
        await self._wait_until(lambda: self._redraws_done >= target, timeout,
                               lambda: "no redraw")

    async def snapshot(self) -> np.ndarray:
        """What the display shows now, as a height x width x 3 RGB uint8 array."""
        result: np.ndarray = await self._request("snapshot", None)
        return result

    async def save_screenshot(self, path: str | os.PathLike[str]) -> None:
        """What the display shows now, as a PNG (or any format pygame.image.save knows)."""
        await self._request("save", os.fspath(path))

    def layout(self) -> Any:
        """The last drawn screen's `painting.Drawn`: its buttons and named regions."""
        return self._drawn

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            costs, converts = list(self._costs_ms), list(self._convert_ms)
            draws, flips = list(self._draw_ms), list(self._flip_ms)
            times = list(self._rendered_times)
        fps = 0.0
        if len(times) >= 2 and time.monotonic() - times[-1] < 1.0:
            window = [t for t in times if t >= times[-1] - 2.0]
            if len(window) >= 2 and window[-1] > window[0]:
                fps = (len(window) - 1) / (window[-1] - window[0])
        return {
            "mode": self.mode,
            "screen_size": list(self.screen_size) if self.screen_size else None,
            "screen": self.current_screen,
            "blanked": self.blanked,
            "rendered_frames": self.rendered_frames,
            "dropped_frames": self.dropped_frames,
            "preview_frames": self.preview_frames,
            "fps": round(fps, 1),
            "screens_drawn": self.screens_drawn,
            "render_passes": self.render_passes,
            "commands_sent": self.commands_sent,
            "started_at": self.started_at,
            "first_screen_at": dict(self.first_screen_at),
            "first_rendered_at": self.first_rendered_at,
            "video_path": self.video_path,
            "gpio_error": self.gpio_error,
            **percentiles("render_cost_ms", costs),  # type: ignore[arg-type]
            **percentiles("convert_ms", converts),  # type: ignore[arg-type]
            **percentiles("draw_ms", draws),  # type: ignore[arg-type]
            **percentiles("flip_ms", flips),  # type: ignore[arg-type]
        }

    # -- plumbing ------------------------------------------------------------------------------

    def _open_gpio(self) -> None:
        if not any(pin is not None and pin >= 0 for pin in self._gpio_pins.values()):
            return
        from .gpio import GpioButtons, GpioError

        try:
            self._gpio = GpioButtons(self._gpio_pins, self.press,
                                     pin_factory=self._gpio_pin_factory)
        except GpioError as exc:
            # Buttons are a convenience: the screen and touch still work without them.
            self.gpio_error = str(exc)
            log.error("%s; the kiosk runs without its GPIO buttons", exc)

    async def _request(self, kind: str, argument: Any) -> Any:
        if self._thread is None:
            raise RuntimeError("the screen is not started")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._requests.append((kind, argument, future))
        self._wake.set()
        return await asyncio.wait_for(asyncio.wrap_future(future), _INIT_TIMEOUT)

    def _take_requests(self) -> list[tuple[str, Any, concurrent.futures.Future[Any]]]:
        with self._lock:
            requests, self._requests = self._requests, []
        return requests

    async def _wait_until(self, done: Callable[[], bool], timeout: float,
                          describe: Callable[[], str]) -> None:
        if done():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (done, future)
        self._waiters.append(waiter)
        try:
            if done():  # drawn before we were listed
                return
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"{describe()} after {timeout} s") from None
        finally:
            self._waiters.remove(waiter)

    def _check_waiters(self) -> None:
        for done, future in self._waiters:
            if not future.done() and done():
                future.set_result(None)

    def _thread_ended(self, error: Exception | None) -> None:  # on the loop
        if self._closed is None or self._closed.done():
            return
        if error is None:
            self._closed.set_result(None)
        else:
            self._closed.set_exception(RuntimeError(f"the screen thread failed: {error!r}"))

    def _deliver(self, command: str) -> None:  # on the loop
        if self.on_command is None:
            return
        try:
            self.on_command(command)
        except Exception:
            log.exception("command %s failed", command)

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        await asyncio.to_thread(thread.join, _JOIN_TIMEOUT)
        if thread.is_alive():
            log.error("screen thread did not stop within %.0f s", _JOIN_TIMEOUT)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    # -- the render thread: everything below runs there and only there -------------------------

    def _render_main(self, ready: concurrent.futures.Future[tuple[int, int]]) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            ready.set_exception(exc)
            return
        try:
            pygame.display.init()
            # SDL reads the hint when the window's surface is made, in set_mode.
            if SOFTWARE_FRAMEBUFFER_HINT not in os.environ and \
                    software_framebuffer(pygame.display.get_driver()):
                os.environ[SOFTWARE_FRAMEBUFFER_HINT] = "0"
            pygame.font.init()
            surface = self._open(pygame)
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            pygame.font.quit()
            pygame.display.quit()
            return
        if not ready.done():
            ready.set_result(surface.get_size())
        if self._backlight is not None:
            self._backlight.set(True)  # a restart must not leave the screen dark
        error: Exception | None = None
        try:
            self._render_loop(pygame, surface)
        except Exception as exc:
            log.exception("screen thread failed; nothing more is shown")
            error = exc
        finally:
            if self._backlight is not None:
                self._backlight.set(True)
            pygame.font.quit()
            pygame.display.quit()
            self._to_loop(self._thread_ended, error)

    def _open(self, pygame: Any) -> Any:
        width, height = self._requested_size
        if self.mode == "fullscreen":
            info = pygame.display.Info()
            size = (width or info.current_w, height or info.current_h)
            surface = pygame.display.set_mode(size, pygame.FULLSCREEN)
            pygame.mouse.set_visible(False)  # a touch kiosk shows no pointer
        else:
            size = (width or DEFAULT_WINDOW_SIZE[0], height or DEFAULT_WINDOW_SIZE[1])
            surface = pygame.display.set_mode(size)
        pygame.display.set_caption(self.title)
        return surface

    def _render_loop(self, pygame: Any, surface: Any) -> None:
        from . import input as inp
        from . import painting

        self._inp, self._screens = inp, painting
        state = _RenderState(time.monotonic(), painting.Theme(surface.get_size()),
                             _Video(direct_video_ok(surface)))
        self.video_path = "direct" if state.video.direct else "blit"
        failures = 0
        while True:
            timeout = min(EVENT_POLL, max(0.0, state.next_redraw - time.monotonic()))
            self._wake.wait(timeout)
            if self._stopping.is_set():
                return
            with self._lock:
                self._wake.clear()
                handed = _Handed(
                    view=self._pending_view, remote=self._remote_slot,
                    preview=self._preview_slot, presses=self._presses,
                    # Served after this pass's drawing: they see every update made before them.
                    requests=self._requests, redraw=self._force_redraw,
                    redraws_asked=self._redraws_asked)
                self._pending_view = self._remote_slot = self._preview_slot = None
                self._presses, self._requests, self._force_redraw = [], [], False
            self.render_passes += 1
            try:
                self._render_pass(pygame, surface, state, handed)
                failures = 0
            except Exception:
                # One bad pass (a drawing bug, a frame swscale refuses) must not take the
                # screen away; a screen that fails every time must take the daemon down.
                failures += 1
                if failures >= MAX_FAILED_PASSES:
                    raise
                if failures == 1:
                    log.exception("drawing the screen failed; trying again")
                state.next_redraw = time.monotonic() + EVENT_POLL
            finally:
                self._serve(pygame, surface, handed.requests)
                if self._waiters:
                    self._to_loop(self._check_waiters)

    def _render_pass(self, pygame: Any, surface: Any, state: _RenderState,
                     handed: _Handed) -> None:
        inp, screens, video = self._inp, self._screens, state.video
        size = surface.get_size()
        now = time.monotonic()
        dirty = handed.redraw
        if handed.view is not None:
            dirty |= self._take_view(state, handed.view, now)
        if now - state.input_read_at >= EVENT_POLL:  # not on every frame: it costs a pass
            state.input_read_at = now                  # 5-10% of its time on X11
            for event in pygame.event.get():
                dirty |= self._on_event(pygame, state, event, size, now)
        for command in handed.presses:
            dirty |= self._on_input(state, inp.Input("button", key=command), now)
        if (not self.blanked and self.sleep_after_s > 0 and self._view_now.state == "idle"
                and now - state.last_activity >= self.sleep_after_s):
            self._set_blank(True)
            dirty = True
        name = v.BLANK if self.blanked else v.screen_for(self._view_now, now,
                                                         state.offline_since)
        if handed.preview is not None:
            self.preview_frames += 1
            state.preview, state.preview_at = handed.preview, now
        if handed.remote is not None:
            state.remote = handed.remote
        in_video = name == v.IN_CALL
        if not in_video:
            state.preview_surface = None  # the next call starts with a fresh preview
        elif (state.preview is not None and now - state.remote_drawn_at > VIDEO_FLOWING_S
              and now - state.preview_shown_at >= 1 / PREVIEW_FPS):
            # No remote picture is coming to carry the new preview: draw it by itself.
            # (While the caller's video flows, the preview waits for its next frame, so
            # two unsynchronised 30 fps streams make 30 flips a second, not 60.)
            dirty = True
        new_frame = in_video and state.remote is not None
        # While the caller's video flows, its frames redraw the duration and buttons too.
        flowing = in_video and now - state.remote_drawn_at <= VIDEO_FLOWING_S
        ticking = now >= state.next_redraw and not flowing
        if not (dirty or new_frame or name != self.current_screen or ticking):
            if flowing and now >= state.next_redraw:
                # The next frame redraws the clock; tick by ourselves only if none comes.
                # (Left in the past, next_redraw would make the thread spin between frames.)
                state.next_redraw = state.remote_drawn_at + VIDEO_FLOWING_S
            return
        started = time.perf_counter()
        converted = 0.0
        wall = time.time()
        ctx = screens.Ctx(surface, state.theme, self._view_now, now, wall,
                          offline_for=None if state.offline_since is None
                          else now - state.offline_since,
                          level_dbfs=self._level(now),
                          controls=now < state.controls_until,
                          preview_corner=self.preview_corner)
        shown = None
        if in_video:
            if state.remote is not None:
                frame, state.remote = state.remote, None
                shown = frame
                video.convert(pygame, frame, size)
                state.remote_drawn_at = now
                converted = time.perf_counter()
            if state.preview is not None and (
                    now - state.preview_shown_at >= 1 / PREVIEW_FPS
                    or state.preview_surface is None):
                frame, state.preview = state.preview, None
                if now - state.preview_at < PREVIEW_FRESH_S:
                    state.preview_surface = self._convert_preview(
                        pygame, state.preview_reformatter, frame, size)
                    state.preview_shown_at = now
            if video.rect is not None:
                video.paint(pygame, surface)
                ctx.video_rect = video.rect
            ctx.preview = state.preview_surface if self.preview else None
        drawn = screens.draw(name, ctx)
        before_flip = time.perf_counter()
        pygame.display.flip()
        done = time.perf_counter()
        if shown is not None:
            self._note_screen_latency(shown)
        self._drawn = drawn
        self.screens_drawn += 1
        self._redraws_done = handed.redraws_asked
        self.current_screen = name
        self.first_screen_at.setdefault(name, time.monotonic())
        if converted:
            self._count_frame(started, converted, before_flip, done)
        next_in = screens.seconds_to_next_redraw(drawn, wall)
        if in_video and now < state.controls_until:
            next_in = min(next_in, state.controls_until - now + 0.01)
        state.next_redraw = now + next_in

    def _note_screen_latency(self, frame: av.VideoFrame) -> None:
        """Capture-to-screen: the sender's stamped capture time to just after the flip (only
        frames that carry a stamp: the synthetic camera's test pattern)."""
        stamp = read_stamp_from_frame(frame)
        if stamp is not None:
            self.screen_latencies_ms.append(latency_ms(stamp[1], wall_clock_ms()))

    def _count_frame(self, started: float, converted: float, before_flip: float,
                     done: float) -> None:
        now = time.monotonic()
        self.rendered_frames += 1
        if self.first_rendered_at is None:
            self.first_rendered_at = now
        if self.call_first_rendered_at is None:
            self.call_first_rendered_at = now
        with self._stats_lock:
            self._costs_ms.append((done - started) * 1000)
            self._convert_ms.append((converted - started) * 1000)
            self._draw_ms.append((before_flip - converted) * 1000)
            self._flip_ms.append((done - before_flip) * 1000)
            self._rendered_times.append(now)

    def _take_view(self, state: _RenderState, view: View, now: float) -> bool:
        old, self._view_now = self._view_now, view
        if view.state != old.state or view.last_outcome_at != old.last_outcome_at:
            state.last_activity = now
            if view.state != "idle" and self.blanked:
                self._set_blank(False)  # an incoming (or outgoing) call wakes the display
        if view.state != old.state:
            if view.state not in ("connecting", "connected"):
                state.remote = None  # the next call must not flash this one's last picture
                state.video.clear()
                self.call_first_rendered_at = None
            if view.state == "connected":
                state.controls_until = now + CONTROLS_S
        if view.online:
            state.offline_since = None
        elif state.offline_since is None:
            state.offline_since = now
        return True

    def _on_event(self, pygame: Any, state: _RenderState, event: Any, size: tuple[int, int],
                  now: float) -> bool:
        if event.type == pygame.QUIT:
            log.debug("ignoring the window's quit event")  # the daemon decides, not the window
            return False
        if event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
            return True
        action = self._inp.translate(event, size)
        return False if action is None else self._on_input(state, action, now)

    def _on_input(self, state: _RenderState, action: Any, now: float) -> bool:
        inp = self._inp
        state.last_activity = now
        if self.blanked:
            self._set_blank(False)
            if action.kind == "pointer":
                return True  # the first touch only wakes: nobody saw what was under it
        call_state = self._view_now.state
        if action.kind == "key":
            command = inp.command_for_key(action.key, call_state)
        elif action.kind == "button":
            command = action.key if inp.allowed(action.key, call_state) else None
        else:
            command = None
            on_video = self.current_screen == v.IN_CALL
            if on_video and now >= state.controls_until:
                state.controls_until = now + CONTROLS_S  # show the buttons; press nothing
                return True
            if on_video:
                state.controls_until = now + CONTROLS_S
            button = inp.hit(self._drawn.buttons, action.pos) if self._drawn else None
            if button is not None and inp.allowed(button.command, call_state):
                command = button.command
        if command is not None:
            self.commands_sent += 1
            log.info("input: %s", command)
            self._to_loop(self._deliver, command)
        return True

    def _set_blank(self, blank: bool) -> None:
        if blank == self.blanked:
            return
        self.blanked = blank
        log.info("display %s", "asleep" if blank else "awake")
        if self._backlight is not None:
            self._backlight.set(not blank)

    def _level(self, now: float) -> float | None:
        level, at = self._pushed_level
        if level is not None and now - at < LEVEL_FRESH_S:
            return level
        return self._view_now.audio_level_dbfs

    def _convert_preview(self, pygame: Any, reformatter: VideoReformatter, frame: av.VideoFrame,
                         size: tuple[int, int]) -> Any:
        _, _, width, height = self._screens.pip_rect(size, (frame.width, frame.height),
                                                     self.preview_corner)
        rgb = np.ascontiguousarray(reformatter.reformat(
            frame, width, height, "rgb24", interpolation=SCALING,
            threads=SCALING_THREADS).to_ndarray())
        picture = pygame.image.frombuffer(rgb, (width, height), "RGB")
        # A mirror is what people expect of themselves; flip also copies off the buffer.
        return pygame.transform.flip(picture, self.mirror_preview, False)

    def _serve(self, pygame: Any, surface: Any,
               requests: list[tuple[str, Any, concurrent.futures.Future[Any]]]) -> None:
        for kind, argument, future in requests:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if kind == "snapshot":
                    future.set_result(
                        np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2)))
                elif kind == "save":
                    pygame.image.save(surface, argument)
                    future.set_result(None)
                else:
                    raise ValueError(f"unknown request {kind}")
            except Exception as exc:
                future.set_exception(exc)


@dataclass
class _Handed:
    """What the render thread took from the slots in one pass."""

    view: View | None
    remote: av.VideoFrame | None
    preview: av.VideoFrame | None
    presses: list[str]
    requests: list[tuple[str, Any, concurrent.futures.Future[Any]]]
    redraw: bool
    redraws_asked: int


class _RenderState:
    """The render thread's own bookkeeping."""

    def __init__(self, now: float, theme: Any, video: _Video) -> None:
        self.theme = theme
        self.video = video
        self.preview_surface: Any = None  # the preview, scaled and mirrored
        self.last_activity = now
        self.offline_since: float | None = now  # nothing says we are online yet
        self.controls_until = 0.0
        self.next_redraw = 0.0  # draw at once
        self.remote: av.VideoFrame | None = None  # the newest remote frame not yet drawn
        self.preview: av.VideoFrame | None = None  # the newest preview frame not yet drawn
        self.preview_at = 0.0
        self.preview_shown_at = 0.0
        self.remote_drawn_at = 0.0
        self.input_read_at = 0.0
        self.preview_reformatter = VideoReformatter()


class ScreenSink(MeasuringSink):
    """One call's remote tracks: drained and measured, the video shown on the kiosk screen.

    Use it per call; the screen itself lives on. The caller's audio
    level goes to the audio-call meter ten times a second.
    """

    LEVEL_INTERVAL_S = 0.1

    def __init__(self, screen: KioskScreen) -> None:
        super().__init__(on_video_frame=screen.show_remote)
        self.screen = screen
        self._rendered_base = screen.rendered_frames
        self._started_at: float | None = None
        self._first_rendered_at: float | None = None
        self._level_pushed_at = 0.0

    async def start(self) -> None:
        if self._started_at is None:
            self._started_at = time.monotonic()
            self._rendered_base = self.screen.rendered_frames
        await super().start()

    @property
    def rendered_frames(self) -> int:
        return self.screen.rendered_frames - self._rendered_base

    async def wait_for_rendered(self, frames: int, timeout: float = 10.0) -> None:
        await self.screen.wait_for_rendered(self._rendered_base + frames, timeout)

    def _on_video(self, frame: av.VideoFrame) -> None:
        super()._on_video(frame)
        self._note_first_rendered()

    def _note_first_rendered(self) -> None:
        # Kept here: the screen forgets it when the call ends, before the app reads stats().
        first = self.screen.call_first_rendered_at
        if (self._first_rendered_at is None and first is not None
                and self._started_at is not None and first >= self._started_at):
            self._first_rendered_at = first

    def _on_audio(self, frame: av.AudioFrame) -> None:
        super()._on_audio(frame)
        now = time.monotonic()
        if now - self._level_pushed_at >= self.LEVEL_INTERVAL_S:
            self._level_pushed_at = now
            self.screen.show_audio_level(self.audio_level_dbfs())

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        self._note_first_rendered()
        screen = self.screen.stats()
        stats.update(
            rendered_frames=self.rendered_frames,
            first_rendered_at=self._first_rendered_at,
            render_fps=screen["fps"],
            render_cost_ms_p50=screen["render_cost_ms_p50"],
            render_cost_ms_p95=screen["render_cost_ms_p95"],
            **percentiles("screen_latency_ms", list(self.screen_latencies_ms)),
        )
        return stats

    @property
    def screen_latencies_ms(self) -> deque[int]:
        return self.screen.screen_latencies_ms


def make_video_sink(screen: KioskScreen) -> ScreenSink:
    """A sink for one call whose video goes to `screen` (see ScreenSink)."""
    return ScreenSink(screen)
