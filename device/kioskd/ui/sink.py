"""One call's remote tracks, drained and measured, with the video shown on the kiosk screen.

The sink is made per call (`make_video_sink`); the screen lives on. It hands each video frame
to the screen when the frame is due (`pacing.PlayoutClock`), counts the frames the screen drew
since the call's sink started, and hands the caller's audio level to the screen's audio-call
meter.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av

from ..media.measure import MeasuringSink, percentiles
from .pacing import MAX_JUMP_S, PlayoutClock
from .screen import KioskScreen


class ScreenSink(MeasuringSink):
    """One call's remote tracks: drained and measured, the video shown on the kiosk screen.

    Use it per call; the screen itself lives on. The caller's audio
    level goes to the audio-call meter ten times a second.
    """

    LEVEL_INTERVAL_S = 0.1

    def __init__(self, screen: KioskScreen,
                 max_fps: Callable[[], float | None] | None = None) -> None:
        super().__init__(on_video_frame=self._pace)
        self.screen = screen
        self._max_fps = max_fps  # while the CPU is pressed, frames beyond it are left out
        self.thinned_frames = 0
        self._playout = PlayoutClock()
        self._held: deque[asyncio.TimerHandle] = deque()  # frames waiting to be due
        self._shown_media = -math.inf  # media time of the last frame handed to the screen
        self._rendered_base = screen.rendered_frames
        self._started_at: float | None = None
        self._first_rendered_at: float | None = None
        self._level_pushed_at = 0.0

    async def start(self) -> None:
        if self._started_at is None:
            self._started_at = time.monotonic()
            self._rendered_base = self.screen.rendered_frames
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        while self._held:
            self._held.popleft().cancel()

    def _pace(self, frame: av.VideoFrame) -> None:
        """Hand `frame` to the screen when it is due (now, if it carries no media time)."""
        if frame.pts is None or frame.time_base is None:
            self.screen.show_remote(frame)
            return
        media = float(frame.pts * frame.time_base)
        wait = self._playout.wait(media, time.monotonic())
        if wait < 0.002:
            self._show(frame, media)
            return
        loop = asyncio.get_running_loop()
        while self._held and self._held[0].when() <= loop.time():
            self._held.popleft()  # run already
        self._held.append(loop.call_later(wait, self._show, frame, media))

    def _show(self, frame: av.VideoFrame, media: float) -> None:
        # A frame held back behind one that went first is stale (unless a new stream began).
        if self._shown_media - MAX_JUMP_S <= media <= self._shown_media:
            return
        limit = self._max_fps() if self._max_fps is not None else None
        # 0.8 of an interval: a caller at 24 or 30 fps drawn at most 15 times a second.
        if limit and 0 < media - self._shown_media < 0.8 / limit:
            self.thinned_frames += 1
            return
        self._shown_media = media
        self.screen.show_remote(frame)

    @property
    def rendered_frames(self) -> int:
        """Remote frames the screen drew since this sink started."""
        return self.screen.rendered_frames - self._rendered_base

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
            playout_delay_ms=round(self._playout.delay_s * 1000),
            thinned_frames=self.thinned_frames,
            render_cost_ms_p50=screen["render_cost_ms_p50"],
            render_cost_ms_p95=screen["render_cost_ms_p95"],
            **percentiles("screen_latency_ms", list(self.screen_latencies_ms)),
        )
        return stats

    @property
    def screen_latencies_ms(self) -> deque[int]:
        return self.screen.screen_latencies_ms


def make_video_sink(screen: KioskScreen,
                    max_fps: Callable[[], float | None] | None = None) -> ScreenSink:
    """A sink for one call whose video goes to `screen` (see ScreenSink)."""
    return ScreenSink(screen, max_fps)
