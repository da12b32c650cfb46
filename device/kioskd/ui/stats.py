"""The screen's statistics: what was drawn, how often, and what each remote frame cost.

The render thread writes them (all but `dropped_frames`, which `KioskScreen.show_remote`
counts on the loop); `KioskScreen.stats()` reads them from the loop. Plain counters are ints
with one writer each; the windows that the percentiles and the frame rate come from are
copied under a lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import av

from ..media.measure import percentiles
from ..media.stamp import latency_ms, read_stamp_from_frame
from ..media.synthetic import wall_clock_ms

COST_WINDOW = 300  # frames kept for the render cost percentiles


class ScreenStats:
    """Counters, first times (time.monotonic()) and the render cost of the screen."""

    def __init__(self) -> None:
        self.rendered_frames = 0  # remote video frames on screen
        self.dropped_frames = 0  # remote frames replaced before they were drawn
        self.preview_frames = 0
        self.screens_drawn = 0  # flips of any kind
        self.render_passes = 0  # wake-ups of the render thread, drawing or not
        self.commands_sent = 0
        self.started_at: float | None = None  # of KioskScreen.start()
        self.first_screen_at: dict[str, float] = {}
        self.first_rendered_at: float | None = None
        self.call_first_rendered_at: float | None = None  # reset when a call ends
        self.video_path = ""  # "direct" (a copy into the display's pixels) or "blit"
        self.screen_latencies_ms: deque[int] = deque(maxlen=COST_WINDOW)
        self._lock = threading.Lock()
        self._costs_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._convert_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._draw_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._flip_ms: deque[float] = deque(maxlen=COST_WINDOW)
        self._rendered_times: deque[float] = deque(maxlen=240)

    def note_screen(self, name: str) -> None:
        """A flip of the screen called `name`."""
        self.screens_drawn += 1
        self.first_screen_at.setdefault(name, time.monotonic())

    def note_frame(self, started: float, converted: float, before_flip: float,
                   done: float) -> None:
        """A remote frame on screen, with the perf_counter() times of its pass."""
        now = time.monotonic()
        self.rendered_frames += 1
        if self.first_rendered_at is None:
            self.first_rendered_at = now
        if self.call_first_rendered_at is None:
            self.call_first_rendered_at = now
        with self._lock:
            self._costs_ms.append((done - started) * 1000)
            self._convert_ms.append((converted - started) * 1000)
            self._draw_ms.append((before_flip - converted) * 1000)
            self._flip_ms.append((done - before_flip) * 1000)
            self._rendered_times.append(now)

    def note_screen_latency(self, frame: av.VideoFrame) -> None:
        """Capture-to-screen: the sender's stamped capture time to just after the flip (only
        frames that carry a stamp: the synthetic camera's test pattern)."""
        stamp = read_stamp_from_frame(frame)
        if stamp is not None:
            self.screen_latencies_ms.append(latency_ms(stamp[1], wall_clock_ms()))

    def report(self) -> dict[str, Any]:
        """The counters, the frame rate of the last two seconds and the cost percentiles."""
        with self._lock:
            costs, converts = list(self._costs_ms), list(self._convert_ms)
            draws, flips = list(self._draw_ms), list(self._flip_ms)
            times = list(self._rendered_times)
        fps = 0.0
        if len(times) >= 2 and time.monotonic() - times[-1] < 1.0:
            window = [t for t in times if t >= times[-1] - 2.0]
            if len(window) >= 2 and window[-1] > window[0]:
                fps = (len(window) - 1) / (window[-1] - window[0])
        return {
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
            **percentiles("render_cost_ms", costs),  # type: ignore[arg-type]
            **percentiles("convert_ms", converts),  # type: ignore[arg-type]
            **percentiles("draw_ms", draws),  # type: ignore[arg-type]
            **percentiles("flip_ms", flips),  # type: ignore[arg-type]
        }
