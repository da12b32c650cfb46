"""The display thread: the one thread that owns SDL, from opening the display to closing it.

It opens the window or the full screen, then wakes whenever the slots hand something over
(or the renderer's next redraw is due, or input is to be read) and runs one render pass.
After each pass it calls the observers (tests and benchmarks watch the screen through them).
A failing pass is logged and tried again; a screen that fails pass after pass ends the
thread, and `closed` raises, so the daemon goes down and systemd restarts it.

Only pygame.display and pygame.font are initialised (pygame.init() would open ALSA for the
mixer). pygame is imported in this thread, so importing this module needs no SDL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..handoff import call_soon
from .renderer import Renderer
from .slots import Observer, Slots

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SIZE = (1280, 720)
MAX_FAILED_PASSES = 50  # drawing failures in a row before the screen gives up (and says so)
_INIT_TIMEOUT = 10.0
_JOIN_TIMEOUT = 5.0
SOFTWARE_FRAMEBUFFER_HINT = "SDL_FRAMEBUFFER_ACCELERATION"


class DisplayError(RuntimeError):
    """The display could not be opened (no X/Wayland/KMS, bad driver, ...)."""


def software_framebuffer(driver: str) -> bool:
    """Whether to ask SDL for the display's own framebuffer rather than an OpenGL texture.

    We blit one converted frame per flip. On X11, SDL's default streams the window through an
    OpenGL texture, which without a GPU is Mesa's software llvmpipe (here it cost 0.12 CPU s
    per call second and ~100 MB RSS, docs/measurements.md), while X's shared-memory image is a
    copy. KMS/DRM (a Pi's console) and Wayland have no framebuffer of their own in SDL 2: the
    texture, on the Pi's GPU, is the only way there. An admin can set the variable to decide.
    """
    return driver.lower() == "x11"


@dataclass(frozen=True)
class RenderPass:
    """What an observer is shown after a pass, on the render thread. `surface` is the
    display's own: read it there and then, never keep it."""

    surface: Any
    screen: str | None  # the screen on the display (view.IDLE, ...); None before the first
    layout: Any  # its painting.Drawn: buttons and named regions


class DisplayThread:
    """One run of the render thread: `await open()` ... `await close()`.

    `mode` is "window" or "fullscreen"; `size` is (width, height), each None for the
    default (the window's 1280x720, the display's own size). `on_shown(name)` is called on the
    loop once, when the first screen is on the display. `closed` is done when the thread has
    ended; it raises if the thread died of an error.
    """

    def __init__(self, slots: Slots, renderer: Renderer, *, mode: str,
                 size: tuple[int | None, int | None], title: str,
                 on_shown: Callable[[str], None]) -> None:
        self._slots = slots
        self._renderer = renderer
        self.mode = mode
        self._size = size
        self._title = title
        self._on_shown = on_shown
        self._shown = False
        self._observers: list[Observer] = []  # the render thread's own
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()

    async def open(self) -> tuple[int, int]:
        """Start the thread and open the display; its size, or DisplayError."""
        ready: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="screen",
                                        daemon=True)
        self._thread.start()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ready), _INIT_TIMEOUT)
        except Exception as exc:
            await self.close()
            if not self.closed.done():
                self.closed.set_result(None)
            raise DisplayError(f"cannot open the {self.mode} display: {exc}") from exc

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._slots.wake()
        await asyncio.to_thread(thread.join, _JOIN_TIMEOUT)
        if thread.is_alive():
            log.error("screen thread did not stop within %.0f s", _JOIN_TIMEOUT)

    def _ended(self, error: Exception | None) -> None:  # on the loop
        if self.closed.done():
            return
        if error is None:
            self.closed.set_result(None)
        else:
            self.closed.set_exception(RuntimeError(f"the screen thread failed: {error!r}"))

    # -- the render thread: everything below runs there and only there -------------------------

    def _main(self, ready: concurrent.futures.Future[tuple[int, int]]) -> None:
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
            surface = self._open_window(pygame)
        except Exception as exc:  # noqa: BLE001  (whatever SDL raises, start() reports it)
            if not ready.done():
                ready.set_exception(exc)
            pygame.font.quit()
            pygame.display.quit()
            return
        if not ready.done():
            ready.set_result(surface.get_size())
        error: Exception | None = None
        try:
            self._renderer.open(pygame, surface)
            self._run(surface)
        except Exception as exc:
            log.exception("screen thread failed; nothing more is shown")
            error = exc
        finally:
            self._renderer.close()
            pygame.font.quit()
            pygame.display.quit()
            call_soon(self._loop, self._ended, error)

    def _open_window(self, pygame: Any) -> Any:
        width, height = self._size
        if self.mode == "fullscreen":
            info = pygame.display.Info()
            size = (width or info.current_w, height or info.current_h)
            surface = pygame.display.set_mode(size, pygame.FULLSCREEN)
            pygame.mouse.set_visible(False)  # a touch kiosk shows no pointer
        else:
            size = (width or DEFAULT_WINDOW_SIZE[0], height or DEFAULT_WINDOW_SIZE[1])
            surface = pygame.display.set_mode(size)
        pygame.display.set_caption(self._title)
        return surface

    def _run(self, surface: Any) -> None:
        failures = 0
        while True:
            self._slots.wait(self._renderer.sleep_for())
            if self._stopping.is_set():
                return
            handed = self._slots.take()
            try:
                self._renderer.run_pass(handed)
                failures = 0
            except Exception:
                # One bad pass (a drawing bug, a frame swscale refuses) must not take the
                # screen away; a screen that fails every time must take the daemon down.
                failures += 1
                if failures >= MAX_FAILED_PASSES:
                    raise
                if failures == 1:
                    log.exception("drawing the screen failed; trying again")
                self._renderer.retry_later()
            finally:
                self._after_pass(surface, handed.observers)

    def _after_pass(self, surface: Any, new_observers: list[Observer]) -> None:
        """Tell the loop the first screen is up; show the pass to the observers (those handed
        over with it first see it now: it took everything handed over before them)."""
        screen = self._renderer.current_screen
        if not self._shown and screen is not None:
            self._shown = True
            call_soon(self._loop, self._on_shown, screen)
        self._observers += new_observers
        if not self._observers:
            return
        report = RenderPass(surface, screen, self._renderer.layout)
        self._observers = [observer for observer in self._observers
                           if not self._observe(observer, report)]

    @staticmethod
    def _observe(observer: Observer, report: RenderPass) -> bool:
        try:
            return observer(report)
        except Exception:
            log.exception("a screen observer failed; it is dropped")
            return True
