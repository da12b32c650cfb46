"""The hand-over from the event loop to the render thread: newest-only slots, one wake-up.

The loop (and gpiozero's thread, for button presses) never waits for drawing. Each `put_*`
stores its value under a short lock and wakes the render thread, which `take`s everything at
the start of a pass. A slot keeps only the newest value: a remote frame replaced before the
thread took it is dropped (`put_remote` says so). The caller's audio level is only stored,
without a wake-up: the thread reads it when it draws anyway.

(kioskd.handoff is the other direction, a device thread to the loop: a queue, not slots.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av

from .view import View

if TYPE_CHECKING:
    from .display import RenderPass

# Called on the render thread after each pass; returns True when it is done watching.
Observer = Callable[["RenderPass"], bool]


@dataclass
class Handed:
    """What the render thread took from the slots for one pass."""

    view: View | None
    remote: av.VideoFrame | None
    preview: av.VideoFrame | None
    presses: list[str]
    observers: list[Observer]
    audio_level: tuple[float | None, float]  # (dBFS, when: time.monotonic())


class Slots:
    """Newest-only slots for the View, the remote frame and the preview frame; a list of
    button presses and of new observers. Every method is thread-safe and returns at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._view: View | None = None
        self._remote: av.VideoFrame | None = None
        self._preview: av.VideoFrame | None = None
        self._presses: list[str] = []
        self._observers: list[Observer] = []
        self.audio_level: tuple[float | None, float] = (None, 0.0)  # (dBFS, monotonic time)

    def put_view(self, view: View) -> None:
        with self._lock:
            self._view = view
        self._wake.set()

    def put_remote(self, frame: av.VideoFrame) -> bool:
        """Hand over the newest remote frame; True if it replaced one that was never drawn."""
        with self._lock:
            dropped = self._remote is not None
            self._remote = frame
        self._wake.set()
        return dropped

    def put_preview(self, frame: av.VideoFrame, wake: bool = True) -> None:
        with self._lock:
            self._preview = frame
        if wake:
            self._wake.set()

    def put_press(self, command: str) -> None:
        with self._lock:
            self._presses.append(command)
        self._wake.set()

    def put_audio_level(self, dbfs: float | None) -> None:
        self.audio_level = (dbfs, time.monotonic())  # one assignment: no lock needed

    def add_observer(self, observer: Observer) -> None:
        with self._lock:
            self._observers.append(observer)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- the render thread's side -------------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Until something is handed over (or `wake`), at most `timeout` seconds."""
        self._wake.wait(timeout)

    def take(self) -> Handed:
        """Everything handed over since the last take; the slots are empty again."""
        with self._lock:
            self._wake.clear()
            handed = Handed(self._view, self._remote, self._preview, self._presses,
                            self._observers, self.audio_level)
            self._view = self._remote = self._preview = None
            self._presses, self._observers = [], []
        return handed
