"""The echo canceller's far-end reference: the samples the speaker actually wrote, in order.

The speaker's playback thread hands over every period it writes to the device, silence
included (`played`), with how much audio the device still holds before it (the playback
delay). The microphone's capture thread takes as many samples as each captured period has
(`take`) and gives them to the echo canceller beside that period. Both threads meet only here,
at a small buffer under a lock; neither waits for the other.

Alignment. A reference sample must reach the canceller no later than its echo reaches the
microphone: the canceller looks for echoes of what it has seen, never of what comes later.
A sample written now is heard `playback_delay` from now, so the buffer may hold at most that
much (plus a period of slack for the two threads' wake-ups); more means the capture side is
behind (clocks that drift apart, a late capture thread), and the oldest samples are dropped.
Less than a period means the speaker is behind (its clock is slower, or it had an xrun): the
period is made up with silence. Both are counted. What remains is a delay the canceller
estimates itself (AEC3 has its own delay estimator); `delay_hint_ms` is its starting hint.

The kiosk has one of these (app.py makes it): the speaker of each call writes into it, the
microphone of each call reads from it. Mono, s16, at the rate both devices run at.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# The far end counts as playing while the speaker wrote within this long (a running speaker
# writes a period, audio or silence, every period).
PLAYING_TIMEOUT_S = 0.5
# Never hold more than this, whatever else happens (no microphone reading, between calls).
MAX_BUFFER_MS = 500


class EchoReference:
    def __init__(self, sample_rate: int = 48000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sample_rate = sample_rate
        self._clock = clock
        self._max_frames = sample_rate * MAX_BUFFER_MS // 1000
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, dtype=np.int16)
        self._playback_delay = 0  # frames the device held after the last write
        self._last_played = -1e9  # time.monotonic() of the last write
        self._wrong_rate_said = False
        self._reset_counts()

    def _reset_counts(self) -> None:
        self.dropped_frames = 0  # reference dropped: the capture side was behind
        self.padded_frames = 0  # silence made up: the speaker was behind (or not yet there)
        self.realignments = 0  # times either happened while the far end was playing
        self._delay_hint_frames = 0

    # -- the playback thread ------------------------------------------------------------

    def played(self, data: bytes, channels: int, playback_delay_frames: int,
               sample_rate: int | None = None) -> None:
        """The speaker wrote `data` (interleaved s16, `channels`) to its device, which then
        held `playback_delay_frames` frames, these included: the last sample written is
        heard that long from now."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            if not self._wrong_rate_said:
                self._wrong_rate_said = True
                log.warning("the speaker runs at %d Hz, the echo canceller at %d Hz: no echo "
                            "cancellation", sample_rate, self.sample_rate)
            return
        samples = np.frombuffer(data, dtype=np.int16)
        if channels == 2:
            samples = (samples.reshape(-1, 2).astype(np.int32).sum(axis=1) // 2).astype(np.int16)
        with self._lock:
            self._buffer = np.concatenate((self._buffer, samples))
            if len(self._buffer) > self._max_frames:
                self._buffer = self._buffer[-self._max_frames:]  # nobody reads: keep it bounded
            self._playback_delay = max(0, playback_delay_frames)
            self._last_played = self._clock()

    # -- the capture thread -------------------------------------------------------------

    def start_reading(self) -> None:
        """A new microphone reads from now on: forget the counts, and what has been heard
        already; keep what the speaker's device still holds (a speaker that plays already,
        as when a lost microphone is opened again mid-call), so that the first periods pair
        up as the later ones will."""
        with self._lock:
            self._buffer = self._buffer[len(self._buffer) - min(len(self._buffer),
                                                                self._playback_delay):]
            self._reset_counts()

    def take(self, frames: int) -> np.ndarray | None:
        """The reference for a captured period of `frames` samples, aligned as the module
        says; None when the far end is not playing (no speaker, or it stopped)."""
        with self._lock:
            if self._clock() - self._last_played > PLAYING_TIMEOUT_S:
                self._buffer = self._buffer[:0]
                return None
            level = len(self._buffer)
            most = self._playback_delay + 2 * frames  # causal, with a period of slack
            if level > most:
                keep = self._playback_delay + frames
                self.dropped_frames += level - keep
                self.realignments += 1
                self._buffer = self._buffer[level - keep:]
                level = keep
            # The first sample taken is heard (playback delay - level) from now; this period
            # was captured over the last `frames`: so its echo is that far into the capture.
            self._delay_hint_frames = max(0, self._playback_delay - level + frames)
            chunk, self._buffer = self._buffer[:frames], self._buffer[frames:]
        if len(chunk) < frames:
            self.padded_frames += frames - len(chunk)
            self.realignments += 1
            chunk = np.concatenate((chunk, np.zeros(frames - len(chunk), dtype=np.int16)))
        return chunk

    @property
    def delay_hint_ms(self) -> int:
        """The echo's expected delay behind the reference taken last, from the devices'
        buffers (the canceller's starting hint; it finds the acoustic part itself)."""
        return round(self._delay_hint_frames * 1000 / self.sample_rate)

    def stats(self) -> dict[str, Any]:
        return {
            "delay_hint_ms": self.delay_hint_ms,
            "reference_dropped_ms": round(self.dropped_frames * 1000 / self.sample_rate),
            "reference_padded_ms": round(self.padded_frames * 1000 / self.sample_rate),
            "reference_realignments": self.realignments,
        }
