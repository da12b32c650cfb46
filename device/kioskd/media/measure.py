"""The measuring sink: drains remote tracks and counts what arrives.

Every sink is one of these (or a subclass), because aiortc's receive queues are unbounded:
a remote track that nobody reads grows memory forever. Draining also gives the numbers that
aiortc's getStats() lacks: frames received, stamp latency, audio level.

The contract, like aiortc's MediaBlackhole: `add_track(track)`, `await start()`,
`await stop()`. Tracks added after start() are drained at once, so a sink can be started
before the remote tracks arrive. One drain task per track; other consumers (the display)
get video frames through `on_video_frame` instead of reading the track a second time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .stamp import latency_ms, read_stamp_from_frame

log = logging.getLogger(__name__)

LATENCY_WINDOW = 2000  # stamps kept for the percentiles
LEVEL_WINDOW = 50  # audio frames (about 1 s at 20 ms) for the level
SILENCE_DBFS = -120.0  # the level reported for digital silence


def percentiles(name: str, values: list[int]) -> dict[str, float | None]:
    """{name_p50, name_p95, name_max} of `values` (None when there are none)."""
    if not values:
        return {f"{name}_p50": None, f"{name}_p95": None, f"{name}_max": None}
    p50, p95 = (float(x) for x in np.percentile(np.asarray(values, dtype=np.float64), [50, 95]))
    return {f"{name}_p50": p50, f"{name}_p95": p95, f"{name}_max": float(max(values))}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _mean_square(frame: av.AudioFrame) -> tuple[float, int]:
    """(mean square relative to full scale, samples per channel) of an audio frame."""
    samples = frame.to_ndarray().reshape(-1)
    if not samples.size:
        return 0.0, frame.samples
    scale = 1.0
    if samples.dtype.kind in "iu":
        scale = float(np.iinfo(samples.dtype.type).max) + 1.0  # type: ignore[type-var]
    values = samples.astype(np.float32)  # one dot product: 50 frames a second, on the loop
    return float(np.dot(values, values)) / (samples.size * scale * scale), frame.samples


class MeasuringSink:
    """Drains audio and video tracks, counting frames, stamp latencies and audio level.

    `on_video_frame(frame)`, if given, is called from the drain task with every video frame;
    it must not block (hand the frame to a thread through a bounded queue).
    """

    def __init__(self, on_video_frame: Callable[[av.VideoFrame], None] | None = None) -> None:
        self.on_video_frame = on_video_frame
        self._tracks: dict[MediaStreamTrack, asyncio.Task[None] | None] = {}
        self._started = False
        self.video_frames = 0
        self.audio_frames = 0
        self.audio_samples = 0
        self.first_video_at: float | None = None  # time.monotonic()
        self.first_audio_at: float | None = None
        self.stamps_decoded = 0
        self.last_counter: int | None = None
        self.video_size: tuple[int, int] | None = None
        self.latencies_ms: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._mean_squares: deque[float] = deque(maxlen=LEVEL_WINDOW)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._callback_failed = False

    # -- the sink contract --------------------------------------------------------------

    @property
    def tracks(self) -> list[MediaStreamTrack]:
        return list(self._tracks)

    def add_track(self, track: MediaStreamTrack) -> None:
        """Drain `track` (from start(), or at once if already started)."""
        if track in self._tracks:
            return
        self._tracks[track] = None
        if self._started:
            self._tracks[track] = self._spawn(track)

    async def start(self) -> None:
        self._started = True
        for track, task in self._tracks.items():
            if task is None:
                self._tracks[track] = self._spawn(track)

    async def stop(self) -> None:
        """Stop draining. The tracks themselves belong to the peer connection."""
        self._started = False
        tasks = [task for task in self._tracks.values() if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tracks = dict.fromkeys(self._tracks)

    # -- measurements -------------------------------------------------------------------

    async def wait_for_frames(self, video: int = 0, audio: int = 0, timeout: float = 10.0) -> None:
        """Return once at least `video` video and `audio` audio frames have arrived.

        Raises asyncio.TimeoutError (TimeoutError) after `timeout` seconds.
        """
        if self._reached(video, audio):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (video, audio, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"got {self.video_frames}/{video} video and {self.audio_frames}/{audio} audio "
                f"frames in {timeout} s"
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def stats(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the counts; latencies in ms, level in dBFS."""
        return {
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "audio_samples": self.audio_samples,
            "first_video_at": self.first_video_at,
            "first_audio_at": self.first_audio_at,
            "video_size": list(self.video_size) if self.video_size else None,
            "stamps_decoded": self.stamps_decoded,
            "last_counter": self.last_counter,
            **percentiles("latency_ms", list(self.latencies_ms)),
            "audio_level_dbfs": self.audio_level_dbfs(),
        }

    def audio_level_dbfs(self) -> float | None:
        """RMS level of the last second of audio in dB relative to full scale, or None.

        A full-scale square wave is 0 dBFS; a sine of amplitude A reads 20*log10(A) - 3.01.
        """
        if not self._mean_squares:
            return None
        mean_square = sum(self._mean_squares) / len(self._mean_squares)
        if mean_square <= 0:
            return SILENCE_DBFS
        return max(SILENCE_DBFS, 10 * math.log10(mean_square))

    # -- the drain ----------------------------------------------------------------------

    def _spawn(self, track: MediaStreamTrack) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(
            self._drain(track), name=f"drain {track.kind} {track.id}"
        )

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                log.debug("%s track %s ended", track.kind, track.id)
                return
            if isinstance(frame, av.VideoFrame):
                self._on_video(frame)
            elif isinstance(frame, av.AudioFrame):
                self._on_audio(frame)
            self._wake_waiters()

    def _on_video(self, frame: av.VideoFrame) -> None:
        self.video_frames += 1
        if self.first_video_at is None:
            self.first_video_at = time.monotonic()
        self.video_size = (frame.width, frame.height)
        stamp = read_stamp_from_frame(frame)
        if stamp is not None:
            counter, capture_ms = stamp
            self.latencies_ms.append(latency_ms(capture_ms, _now_ms()))
            self.stamps_decoded += 1
            self.last_counter = counter
        if self.on_video_frame is not None:
            try:
                self.on_video_frame(frame)
            except Exception:
                # A broken consumer must not stop the drain (memory would grow); say it once.
                if not self._callback_failed:
                    log.exception("video frame consumer failed; frames keep being drained")
                    self._callback_failed = True

    def _on_audio(self, frame: av.AudioFrame) -> None:
        self.audio_frames += 1
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        mean_square, samples = _mean_square(frame)
        self._mean_squares.append(mean_square)
        self.audio_samples += samples

    def _reached(self, video: int, audio: int) -> bool:
        return self.video_frames >= video and self.audio_frames >= audio

    def _wake_waiters(self) -> None:
        for video, audio, future in self._waiters:
            if not future.done() and self._reached(video, audio):
                future.set_result(None)
