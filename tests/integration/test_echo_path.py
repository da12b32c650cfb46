"""The tests' echo path itself (tests/support/pipewire_echo.py), through ALSA as the kiosk
opens it: what is played into the loudspeaker PCM comes back from the microphone PCM in real
time, shaped by the room, and nothing else comes back."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from tests.support import pipewire_echo
from tests.support.alsa_file_plugin import level_dbfs

pytestmark = pytest.mark.timeout(60)

RATE = pipewire_echo.RATE
PERIOD = RATE // 50  # 20 ms, as the kiosk's devices use


def _open(direction: str, device: str, periods: int):
    import alsaaudio

    kind = alsaaudio.PCM_CAPTURE if direction == "capture" else alsaaudio.PCM_PLAYBACK
    return alsaaudio.PCM(kind, alsaaudio.PCM_NORMAL, device=device, rate=RATE, channels=1,
                         format=alsaaudio.PCM_FORMAT_S16_LE, periodsize=PERIOD, periods=periods)


class Recorder:
    """Captures `seconds` from the microphone PCM on a thread; notes when each read returned."""

    def __init__(self, seconds: float) -> None:
        self.pcm = _open("capture", pipewire_echo.CAPTURE_PCM, 4)
        self.wanted = round(seconds * RATE)
        self.chunks: list[np.ndarray] = []
        self.arrivals: list[tuple[int, float]] = []  # (samples so far, time.monotonic())
        self.overruns = 0
        self.thread = threading.Thread(target=self._run, name="echo path capture", daemon=True)

    def _run(self) -> None:
        count = 0
        try:
            while count < self.wanted:
                length, data = self.pcm.read()
                if length < 0:  # -EPIPE: this thread was late (a busy machine); re-prepared
                    self.overruns += 1
                elif length > 0:
                    self.chunks.append(np.frombuffer(data, dtype="<i2"))
                    count += length
                    self.arrivals.append((count, time.monotonic()))
        finally:
            self.pcm.close()

    def samples(self, timeout: float) -> np.ndarray:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the microphone PCM stopped delivering"
        return np.concatenate(self.chunks)[: self.wanted]

    def arrival_of(self, index: int) -> float:
        """When the read that brought sample `index` returned."""
        return next(at for count, at in self.arrivals if count > index)


def test_microphone_hears_nothing_while_nothing_plays(echo_path, monkeypatch):
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(echo_path.asoundrc))
    recorder = Recorder(seconds=1.0)
    recorder.thread.start()
    heard = recorder.samples(timeout=10)
    assert level_dbfs(heard) < -90


def test_played_noise_comes_back_through_the_room(echo_path, monkeypatch):
    """White noise (seeded) into the loudspeaker: the microphone hears it after the path's
    delay, as loud as the room's impulse response says (its energy), with the direct sound's
    gain where the cross-correlation peaks. The measures hold when a busy machine makes a
    device run dry for a moment: energy over the whole, the peak within the first 250 ms."""
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(echo_path.asoundrc))
    noise = np.random.default_rng(3).standard_normal(RATE) * 0.05  # 1 s at -26 dBFS
    lead = np.zeros(RATE * 3 // 10)
    played = np.round(np.concatenate([lead, noise, np.zeros(RATE // 2)]) * 32767).astype("<i2")
    recorder = Recorder(seconds=len(played) / RATE + 0.5)
    speaker = _open("playback", pipewire_echo.PLAYBACK_PCM, 3)
    recorder.thread.start()
    written_at = None
    underruns = 0
    try:
        for start in range(0, len(played), PERIOD):
            if start <= len(lead) < start + PERIOD:
                written_at = time.monotonic()  # the write that holds the noise's first sample
            chunk = played[start : start + PERIOD].tobytes()
            if speaker.write(chunk) < 0:  # -EPIPE: ran dry; pyalsaaudio has re-prepared it
                underruns += 1
                speaker.write(chunk)
    finally:
        speaker.close()
    heard = recorder.samples(timeout=10).astype(np.float64) / 32768

    onset = int(np.argmax(np.abs(heard) > 1e-3))  # before it, silence: exact zeros
    gain_db = 10 * math.log10(float(np.sum(heard * heard)) / float(np.sum(noise * noise)))
    # Where the noise's start is in what was heard: the peak of their cross-correlation.
    first = noise[: RATE // 4]
    size = len(heard) + len(first)
    correlation = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(first, size)), size)
    lag = int(np.argmax(np.abs(correlation[: len(heard)])))
    direct_gain = correlation[lag] / float(np.sum(first * first))
    assert written_at is not None
    delay_ms = (recorder.arrival_of(onset) - written_at) * 1000
    print(f"echo path: {delay_ms:.0f} ms from write to read, gain {gain_db:.2f} dB "
          f"(room {echo_path.room.gain_db:.2f} dB), direct sound {direct_gain:.3f} "
          f"(room {echo_path.room.direct_gain:.3f}), {underruns} underruns, "
          f"{recorder.overruns} overruns")

    assert abs(gain_db - echo_path.room.gain_db) < 1.0
    assert math.isclose(direct_gain, echo_path.room.direct_gain, rel_tol=0.1)
    # The direct sound is the first thing heard: nothing but the loudspeaker reaches the mic.
    assert abs(lag - onset) <= 1
    assert 0 < delay_ms < 500
