"""Synthetic sources: a stamped test pattern camera and a sine tone microphone.

Both are paced by the stream clock: frame n is due at start + n * period, measured from the
first `recv()`, so they never drift and run the same on a laptop, in CI and on the kiosk.
When the consumer falls behind they skip the missed slots (the pts jumps with real time)
instead of delivering a burst.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import math
import time
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .backend import ConfiguredBackend
from .stamp import stamp_height, write_stamp

if TYPE_CHECKING:
    from ..config import Config

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

# 75% colour bars (white, yellow, cyan, green, magenta, red, blue) in BT.601 video range.
_BARS_RGB = ((191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
             (191, 0, 191), (191, 0, 0), (0, 0, 191))  # fmt: skip


def _rgb_to_yuv601(r: float, g: float, b: float) -> tuple[int, int, int]:
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def _plane_view(plane: av.video.plane.VideoPlane, width: int, height: int) -> np.ndarray:
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


class TestPattern:
    """Draws stamped yuv420p frames: colour bars, a moving white bar, the stamp on top.

    The bars are computed once; a frame costs three plane copies, the bar and the stamp.
    Pictures too small for a stamp (under 80 pixels wide, or barely taller than the stamp)
    get none: `stamped` says which.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError(f"test pattern size {width}x{height} is not even and at least 16x16")
        self.stamped = width >= 80 and height >= stamp_height(width) + 16
        self.width, self.height = width, height
        columns = (np.arange(width) * len(_BARS_RGB)) // width
        yuv = np.array([_rgb_to_yuv601(*rgb) for rgb in _BARS_RGB], dtype=np.uint8)
        self._y = np.ascontiguousarray(np.broadcast_to(yuv[columns, 0], (height, width)))
        # A grey ramp under the bars, so the picture has some texture at every width.
        ramp_top = height * 3 // 4
        self._y[ramp_top:] = np.linspace(16, 235, width).astype(np.uint8)
        chroma_columns = columns[::2]
        self._u = np.ascontiguousarray(
            np.broadcast_to(yuv[chroma_columns, 1], (height // 2, width // 2))
        )
        self._v = np.ascontiguousarray(
            np.broadcast_to(yuv[chroma_columns, 2], (height // 2, width // 2))
        )
        self._u[ramp_top // 2 :] = 128
        self._v[ramp_top // 2 :] = 128
        self._bar_width = max(2, (width // 24) & ~1)
        self._stamp_bottom = stamp_height(width) if self.stamped else 0

    def render(self, index: int, counter: int, capture_ms: int) -> av.VideoFrame:
        """Frame number `index` of the pattern (the bar moves with it), stamped."""
        width, height = self.width, self.height
        frame = av.VideoFrame(width, height, "yuv420p")
        y = _plane_view(frame.planes[0], width, height)
        u = _plane_view(frame.planes[1], width // 2, height // 2)
        v = _plane_view(frame.planes[2], width // 2, height // 2)
        np.copyto(y, self._y)
        np.copyto(u, self._u)
        np.copyto(v, self._v)
        # The bar crosses the picture in about four seconds at 30 fps.
        step = max(2, (width // 120) & ~1)
        left = (index * step) % (width - self._bar_width)
        left &= ~1
        right = left + self._bar_width
        y[self._stamp_bottom :, left:right] = 235
        u[:, left // 2 : right // 2] = 128
        v[:, left // 2 : right // 2] = 128
        if self.stamped:
            write_stamp(y, counter, capture_ms)
        return frame


@functools.lru_cache(maxsize=4)
def _pattern(width: int, height: int) -> TestPattern:
    """One pattern per size, shared by every call (it is read-only once made): building it
    costs the answer 0.2 ms."""
    return TestPattern(width, height)


def wall_clock_ms() -> int:
    """The capture time a stamp carries: wall-clock milliseconds modulo 2**40."""
    return int(time.time() * 1000) % (1 << 40)


class _StreamClock:
    """Slot n of a stream is due at start + n / rate (monotonic seconds), from the first call."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start: float | None = None
        self._next_slot = 0

    async def next_slot(self) -> int:
        """Sleep until the next slot is due and return its number; skip slots already missed."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self._next_slot = 1
            return 0
        slot = self._next_slot
        due = self._start + slot / self.rate
        if now > due + 1 / self.rate:
            # More than one slot late: don't burst, resume at the slot of now.
            slot = math.floor((now - self._start) * self.rate)
        else:
            delay = due - now
            if delay > 0:
                await asyncio.sleep(delay)
        self._next_slot = slot + 1
        return slot


class SyntheticCamera(MediaStreamTrack, ConfiguredBackend):
    """A video track of the stamped test pattern at `fps`, yuv420p, pts in 90 kHz units.

    The stamp carries a counter (0, 1, 2, ... one per delivered frame) and the wall-clock
    time at which the frame was produced.
    """

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        super().__init__()
        if fps <= 0:
            raise ValueError(f"fps must be positive, not {fps}")
        self.width, self.height, self.fps = width, height, fps
        self._pattern = _pattern(width, height)
        self._clock = _StreamClock(fps)
        self._counter = 0

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        video = config.video
        return {"width": video.width, "height": video.height, "fps": video.fps}

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._clock.next_slot()
        if self.readyState != "live":  # stopped while we slept
            raise MediaStreamError
        frame = self._pattern.render(slot, self._counter, wall_clock_ms())
        frame.pts = round(slot * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self._counter += 1
        return frame


class SyntheticTone(MediaStreamTrack, ConfiguredBackend):
    """An audio track of a continuous sine: 20 ms s16 mono frames, pts in samples."""

    kind = "audio"

    def __init__(
        self, frequency: float = 440.0, sample_rate: int = 48000, amplitude: float = 0.3
    ) -> None:
        super().__init__()
        if not 0 < frequency < sample_rate / 2:
            raise ValueError(f"frequency {frequency} Hz is not below half of {sample_rate} Hz")
        if not 0 <= amplitude <= 1:
            raise ValueError(f"amplitude {amplitude} is not within 0..1 (of full scale)")
        self.frequency, self.sample_rate, self.amplitude = frequency, sample_rate, amplitude
        self.samples_per_frame = sample_rate // 50  # 20 ms
        self._time_base = fractions.Fraction(1, sample_rate)
        self._clock = _StreamClock(sample_rate / self.samples_per_frame)
        self._cycles_per_sample = frequency / sample_rate
        self._ramp = np.arange(self.samples_per_frame, dtype=np.float64)

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        return {"frequency": config.audio.tone_hz}

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._clock.next_slot()
        if self.readyState != "live":
            raise MediaStreamError
        first_sample = slot * self.samples_per_frame
        # The phase is a function of the sample number, so skipped slots keep it continuous.
        # Reduce the start phase first to keep float precision over days of running.
        start_cycles = math.fmod(first_sample * self._cycles_per_sample, 1.0)
        phase = 2 * np.pi * (start_cycles + self._ramp * self._cycles_per_sample)
        samples = np.round(np.sin(phase) * (self.amplitude * 32767)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = first_sample
        frame.time_base = self._time_base
        return frame
