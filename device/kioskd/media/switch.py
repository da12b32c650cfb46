"""Mute and camera-off without renegotiating: the track keeps flowing, with silence or black.

The wrapper keeps the source's timing (pts, time base, size), so the far end sees one
continuous stream and nothing needs a new offer. Pre-encoded H.264 packets cannot be blacked
out without an encoder: camera-off holds them back instead (the far end keeps the last picture).

It is also where the app learns that a device failed mid-call: a source that ends by itself
(its recv() raises MediaStreamError while the wrapper is still live) calls `on_ended` with the
source's `error`. Then either the wrapper ends too (aiortc's sender stops sending that track;
the call goes on), or, with `wait_for_replacement` set, it waits for `replace_source()` with
the device opened again, and goes on from there: the far end sees a pause, then the picture or
the sound again, with timestamps that carry on from where they stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .shedding import FrameThinner

log = logging.getLogger(__name__)


class SwitchableTrack(MediaStreamTrack):
    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self.source = source
        self.off = False  # muted (audio) or camera off (video)
        # Sees every video frame sent (the local preview); must not block.
        self.on_frame: Callable[[av.VideoFrame], None] | None = None
        # Called once, on the loop, with why, when the source ends without stop() (a device
        # that failed mid-call); must not block.
        self.on_ended: Callable[[str], None] | None = None
        # After on_ended, wait for replace_source() instead of ending (the app reopens).
        self.wait_for_replacement = False
        # A pre-encoded source whose codec the far end did not choose, with the codec it
        # chose: the app replaces the source with one that gives frames to encode.
        self.on_codec_refused: Callable[[str], None] | None = None
        self._replaced = asyncio.Event()
        self._black: av.VideoFrame | None = None
        self._pts_offset = 0  # added to the source's pts, so a replacement carries on
        self._rebase = False  # compute _pts_offset at the next frame (a new source)
        self._last: tuple[int, Fraction, float] | None = None  # pts, time base, when sent
        # Video frames (or pre-encoded access units) handed to the sender: the call log's
        # frames_sent (aiortc's own stats count packets on the sending side, not frames).
        self.frames_sent = 0
        # Leaves video frames out (or sends them smaller) while the CPU is pressed.
        self.thinner: FrameThinner | None = None

    async def recv(self):  # returns what the source returns, replaced while off
        while True:
            try:
                frame = await self.source.recv()
            except MediaStreamError:
                self._source_ended()
                if not self.wait_for_replacement or self.readyState != "live":
                    raise
                self._replaced.clear()
                await self._replaced.wait()  # replace_source() or stop()
                if self.readyState != "live":
                    raise
                continue
            self._carry_on_timing(frame)
            if self.off:
                if isinstance(frame, av.AudioFrame):
                    frame = _silence_like(frame)
                elif isinstance(frame, av.VideoFrame):
                    frame = self._black_like(frame)
                else:
                    continue  # av.Packet: nothing to send; the source paces us to the next
            if self.thinner is not None and isinstance(frame, av.VideoFrame):
                frame = self.thinner.thin(frame)
                if frame is None:
                    continue
            if self.on_frame is not None and isinstance(frame, av.VideoFrame):
                self.on_frame(frame)
            if self.kind == "video":
                self.frames_sent += 1
            return frame

    def replace_source(self, source: MediaStreamTrack) -> None:
        """Go on with `source` (the same device, opened again). Its timestamps are shifted to
        carry on from the last frame sent, plus the time since."""
        old, self.source = self.source, source
        old.stop()
        self._rebase = True
        self._replaced.set()

    def _carry_on_timing(self, frame) -> None:
        if frame.pts is None or frame.time_base is None:
            return
        now = time.monotonic()
        if self._rebase and self._last is not None:
            last_pts, last_time_base, sent_at = self._last
            due_s = last_pts * last_time_base + Fraction(now - sent_at)
            self._pts_offset = round(due_s / frame.time_base) - frame.pts
        self._rebase = False
        frame.pts += self._pts_offset
        self._last = (frame.pts, frame.time_base, now)

    def _source_ended(self) -> None:
        if self.readyState != "live":
            return  # stopped on purpose: the call ended
        on_ended, self.on_ended = self.on_ended, None
        if on_ended is not None:
            try:
                on_ended(getattr(self.source, "error", None) or "its source ended")
            except Exception:  # the app's bookkeeping must not change how the track ends
                log.exception("a %s track's on_ended callback failed", self.kind)

    def _black_like(self, frame: av.VideoFrame) -> av.VideoFrame:
        black = self._black
        if black is None or (black.width, black.height) != (frame.width, frame.height):
            # Built once per size: black in YUV is Y=16, U=V=128.
            y = np.full((frame.height, frame.width), 16, dtype=np.uint8)
            uv = np.full((frame.height // 2, frame.width // 2), 128, dtype=np.uint8)
            black = av.VideoFrame.from_ndarray(
                np.concatenate([y.ravel(), uv.ravel(), uv.ravel()]).reshape(-1, frame.width),
                format="yuv420p")
            self._black = black
        out = av.VideoFrame.from_ndarray(black.to_ndarray(), format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def stop(self) -> None:
        super().stop()
        self.source.stop()
        self._replaced.set()  # a recv() waiting for a replacement ends

    def __getattr__(self, name: str):
        # Back-end extras (keyframe requests, stats, pre-encoded codec) pass through.
        return getattr(self.source, name)


def _silence_like(frame: av.AudioFrame) -> av.AudioFrame:
    silent = av.AudioFrame(format=frame.format.name, layout=frame.layout.name,
                           samples=frame.samples)
    for plane in silent.planes:
        plane.update(bytes(plane.buffer_size))
    silent.sample_rate, silent.pts, silent.time_base = frame.sample_rate, frame.pts, frame.time_base
    return silent
