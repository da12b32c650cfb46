"""The display sink: shows the remote video in a window or full screen with pygame/SDL.

A render thread owns SDL. The asyncio drain task hands it frames through a one-frame slot
that keeps only the newest frame, so a slow display drops frames instead of queueing them
and the event loop never waits for drawing. Each frame is scaled and converted once, in C
(libswscale via `frame.reformat`), to the largest size that fits the screen with its
aspect ratio kept, and blitted centred on black.

Only `pygame.display` is initialised: `pygame.init()` would also open ALSA for the mixer.
pygame is imported in the render thread, so importing this module needs no SDL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections import deque
from typing import Any

import av
import numpy as np

from .measure import LATENCY_WINDOW, MeasuringSink, percentiles
from .stamp import latency_ms, read_stamp_from_frame
from .synthetic import wall_clock_ms

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SIZE = (1280, 720)
MODES = ("window", "fullscreen")
_INIT_TIMEOUT = 10.0  # seconds for SDL to open the display
_JOIN_TIMEOUT = 5.0  # seconds stop() waits for the render thread
_EVENT_POLL = 0.1  # seconds: how often the idle render thread handles window events


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


class DisplaySink(MeasuringSink):
    """Shows one video track; also a MeasuringSink, so its counts are always available.

    `mode` is "window" (`width` x `height`, 1280x720 by default) or "fullscreen" (the
    display's size unless `width` and `height` are given). Another sink can feed it
    instead of a track: `MeasuringSink(on_video_frame=display.show)`, then `await
    display.start()` without adding a track.
    """

    def __init__(
        self,
        mode: str = "window",
        width: int | None = None,
        height: int | None = None,
        title: str = "kioskd",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f'display mode "{mode}" is not one of {", ".join(MODES)}')
        super().__init__(on_video_frame=self.show)
        self.mode = mode
        self.title = title
        self._requested_size = (width, height)
        self.screen_size: tuple[int, int] | None = None
        self.rendered_frames = 0
        self.dropped_frames = 0
        self.first_rendered_at: float | None = None  # time.monotonic()
        self.screen_latencies_ms: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._slot: av.VideoFrame | None = None
        self._slot_lock = threading.Lock()
        self._frame_ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._render_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def show(self, frame: av.VideoFrame) -> None:
        """Hand a frame to the render thread; never blocks. A frame not yet drawn is dropped."""
        with self._slot_lock:
            if self._slot is not None:
                self.dropped_frames += 1
            self._slot = frame
        self._frame_ready.set()

    async def start(self) -> None:
        """Open the display (raises DisplayError if it can't), then drain the tracks."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            ready: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._render_loop, args=(ready,), name="display", daemon=True
            )
            self._thread.start()
            try:
                opened = asyncio.wait_for(asyncio.wrap_future(ready), _INIT_TIMEOUT)
                self.screen_size = await opened
            except Exception as exc:
                await self._join()
                raise DisplayError(f"cannot open the {self.mode} display: {exc}") from exc
            log.info("display open: %s %dx%d", self.mode, *self.screen_size)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self._join()

    async def wait_for_rendered(self, frames: int, timeout: float = 10.0) -> None:
        """Return once `frames` frames have been drawn; asyncio.TimeoutError after `timeout`."""
        if self.rendered_frames >= frames:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (frames, future)
        self._render_waiters.append(waiter)
        try:
            # Check again: the render thread may have drawn them before we were listed.
            if self.rendered_frames >= frames:
                return
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(
                f"rendered {self.rendered_frames}/{frames} frames in {timeout} s"
            ) from None
        finally:
            self._render_waiters.remove(waiter)

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats.update(
            rendered_frames=self.rendered_frames,
            dropped_frames=self.dropped_frames,
            first_rendered_at=self.first_rendered_at,
            screen_size=list(self.screen_size) if self.screen_size else None,
            **percentiles("screen_latency_ms", list(self.screen_latencies_ms)),
        )
        return stats

    def _note_screen_latency(self, frame: av.VideoFrame) -> None:
        """Capture-to-screen: the sender's stamped capture time to just after the flip."""
        stamp = read_stamp_from_frame(frame)
        if stamp is not None:
            self.screen_latencies_ms.append(latency_ms(stamp[1], wall_clock_ms()))

    def _wake_render_waiters(self) -> None:
        for frames, future in self._render_waiters:
            if not future.done() and self.rendered_frames >= frames:
                future.set_result(None)

    async def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._frame_ready.set()
        await asyncio.to_thread(thread.join, _JOIN_TIMEOUT)
        if thread.is_alive():
            log.error("display thread did not stop within %.0f s", _JOIN_TIMEOUT)

    # -- the render thread: everything below runs there and only there ---------------------

    def _render_loop(self, ready: concurrent.futures.Future[tuple[int, int]]) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            ready.set_exception(exc)
            return
        try:
            pygame.display.init()
            screen = self._open(pygame)
            ready.set_result(screen.get_size())
        except Exception as exc:
            # Also when start() gave up waiting and cancelled `ready`: close what we opened.
            if not ready.done():
                ready.set_exception(exc)
            pygame.display.quit()
            return
        try:
            self._draw_frames(pygame, screen)
        except Exception:
            log.exception("display thread failed; video is no longer shown")
        finally:
            pygame.display.quit()

    def _open(self, pygame: Any) -> Any:
        width, height = self._requested_size
        if self.mode == "fullscreen":
            info = pygame.display.Info()
            size = (width or info.current_w, height or info.current_h)
            screen = pygame.display.set_mode(size, pygame.FULLSCREEN)
            pygame.mouse.set_visible(False)
        else:
            size = (width or DEFAULT_WINDOW_SIZE[0], height or DEFAULT_WINDOW_SIZE[1])
            screen = pygame.display.set_mode(size)
        pygame.display.set_caption(self.title)
        screen.fill((0, 0, 0))
        pygame.display.flip()
        return screen

    def _draw_frames(self, pygame: Any, screen: Any) -> None:
        last_rect: tuple[int, int, int, int] | None = None
        while True:
            self._frame_ready.wait(_EVENT_POLL)
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    # Closing the window does not stop a kiosk; the daemon decides.
                    log.debug("ignoring the window's quit event")
            if self._stopping.is_set():
                return
            with self._slot_lock:
                frame, self._slot = self._slot, None
                self._frame_ready.clear()
            if frame is None:
                continue
            rect = letterbox((frame.width, frame.height), screen.get_size())
            x, y, width, height = rect
            if rect != last_rect:
                screen.fill((0, 0, 0))  # the bars only need painting when the picture moves
                last_rect = rect
            rgb = frame.reformat(width=width, height=height, format="rgb24")
            # to_ndarray drops the line padding; frombuffer needs contiguous rows.
            pixels = np.ascontiguousarray(rgb.to_ndarray())
            screen.blit(pygame.image.frombuffer(pixels, (width, height), "RGB"), (x, y))
            pygame.display.flip()
            self._note_screen_latency(frame)
            if self.first_rendered_at is None:
                self.first_rendered_at = time.monotonic()
            self.rendered_frames += 1
            if self._render_waiters and self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self._wake_render_waiters)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    pass
