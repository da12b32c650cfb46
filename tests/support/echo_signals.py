"""An echo to cancel, made up: seeded speech-like talk, a synthetic room, and the measures.

`scenario(delay_ms)` is the far end's talk, what the kiosk's microphone hears of it through a
room (RT60 `rt60_s`) `delay_ms` after the speaker plays it, and in the last third the kiosk's
own talker as well (double talk). `run_stage` feeds a processing stage through the API the
ALSA back ends use, period by period, as a sound card would: the speaker's device takes three
periods of silence at once when it starts (AlsaSpeaker fills its buffer), then a period each
period, and holds three periods (60 ms) before the one it plays; the microphone delivers a
period each period. `erle_db` and `near_loss_db` measure the result. Used by
tests/unit/test_echo_cancellation.py and bench/echo.py.

The talk is not speech, but has what an echo canceller cares about: a voiced part (a pitch
of 100-250 Hz with its harmonics, drifting), unvoiced noise bursts, a speech-like spectrum
(formants at 500, 1500 and 2500 Hz, little above 4 kHz), syllables of 80-300 ms and pauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 48000
PERIOD = 960  # 20 ms, as the ALSA devices deliver them
DEVICE_PERIODS = 3  # the speaker's device buffer (alsa.PLAYBACK_DEVICE_PERIODS)
TALK_DBFS = -20.0  # the far end's level at the speaker
ECHO_GAIN_DB = -6.0  # the room's coupling: the echo at the microphone, relative to the speaker
NEAR_DBFS = -26.0  # the kiosk's talker at the microphone: as loud as the echo (hard double talk)


def speech_like(seconds: float, seed: int, pitch_hz: float = 140.0,
                level_dbfs: float = TALK_DBFS) -> np.ndarray:
    """Seeded speech-like talk at `level_dbfs` RMS, as float samples in int16 units."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    out = np.zeros(n)
    t = 0
    while t < n:
        length = min(int(rng.uniform(0.08, 0.30) * RATE), n - t)
        pause = int(rng.uniform(0.03, 0.25) * RATE)
        envelope = np.sin(np.pi * np.arange(length) / length) ** 2
        if rng.random() < 0.25:  # unvoiced: a noise burst
            syllable = rng.standard_normal(length) * 0.8
        else:  # voiced: a drifting pitch and its harmonics, a little breath
            tt = np.arange(length) / RATE
            f0 = pitch_hz * rng.uniform(0.8, 1.25) * (
                1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 5) * tt))
            phase = 2 * np.pi * np.cumsum(f0) / RATE
            harmonics = range(1, int(8000 // pitch_hz))
            syllable = sum(np.sin(k * phase) / k for k in harmonics)
            syllable = syllable + rng.standard_normal(length) * 0.3
        out[t:t + length] = syllable * envelope
        t += length + pause
    # A speech-like spectrum: a gentle low-pass and three formants; nothing below 80 Hz.
    spectrum = np.fft.rfft(out)
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = 1 / (1 + (f / 3000) ** 2)
    for centre, width, gain in ((500, 200, 2.0), (1500, 300, 1.2), (2500, 400, 0.6)):
        shape = shape + gain / (1 + ((f - centre) / width) ** 2)
    shape[f < 80] = 0
    out = np.fft.irfft(spectrum * shape, n)
    return out / np.sqrt(np.mean(out ** 2)) * 32768 * 10 ** (level_dbfs / 20)


def room_response(rt60_s: float, seed: int, length_s: float = 0.4) -> np.ndarray:
    """A synthetic room: a direct path 2 ms in, then a diffuse tail (noise) decaying by 60 dB
    in `rt60_s`; unit energy."""
    rng = np.random.default_rng(seed)
    n = round(length_s * RATE)
    t = np.arange(n) / RATE
    response = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    direct = round(0.002 * RATE)
    response[:direct] = 0
    response[direct] += 4
    return response / np.sqrt(np.sum(response ** 2))


@dataclass
class Scenario:
    far: np.ndarray  # int16: what the speaker plays
    mic: np.ndarray  # int16: what the microphone hears (echo, and the near end at the end)
    near: np.ndarray  # float: the kiosk's talker alone, as the microphone hears it
    double_talk_from: int  # the sample where the near end starts talking


def scenario(delay_ms: float, seconds: float = 12.0, seed: int = 1,
             rt60_s: float = 0.3) -> Scenario:
    """Far-end talk throughout; its echo `delay_ms` after it is heard (on top of the
    speaker's device buffer, which `run_stage` plays it through); near-end talk in the last
    third."""
    far = speech_like(seconds, seed)
    room = room_response(rt60_s, seed + 200)
    size = len(far) + len(room)  # convolved by FFT: directly it takes seconds
    echo = np.fft.irfft(np.fft.rfft(far, size) * np.fft.rfft(room, size), size)[:len(far)]
    echo *= 10 ** (ECHO_GAIN_DB / 20)
    late = round((delay_ms / 1000) * RATE) + DEVICE_PERIODS * PERIOD
    echo = np.concatenate((np.zeros(late), echo[:len(echo) - late]))
    start = len(far) * 2 // 3
    near = np.zeros_like(far)
    near[start:] = speech_like(seconds, seed + 100, pitch_hz=210.0,
                               level_dbfs=NEAR_DBFS)[start:]
    mic = np.clip(np.round(echo + near), -32768, 32767).astype(np.int16)
    return Scenario(np.clip(np.round(far), -32768, 32767).astype(np.int16), mic, near, start)


@dataclass
class Run:
    out: np.ndarray  # int16: what the stage let through
    gain_db: np.ndarray  # the automatic gain applied to each period (0 without it)
    cpu_s: np.ndarray  # the capture thread's CPU time for each process() call
    stats_at: dict[str, Any] | None = None  # the stage's stats() at `stats_at_sample`


def run_stage(stage: Any, reference: Any, mic: np.ndarray, far: np.ndarray,
              clock: Any = None, stats_at_sample: int | None = None) -> Run:
    """Feed `stage` (AudioProcessing) and `reference` (its EchoReference) as the ALSA back ends
    do: the speaker writes three periods of silence at once (its device buffer), then one
    period of `far` per period, and after each the microphone delivers one of `mic`. `clock`:
    the CPU clock to time each process() call with (time.thread_time)."""
    import time

    clock = clock or time.thread_time
    queued = DEVICE_PERIODS * PERIOD  # a card's buffer stays full: writes block until room
    stage.start()
    for _ in range(DEVICE_PERIODS):
        reference.played(bytes(PERIOD * 2), 1, queued)
    periods = len(mic) // PERIOD
    out = np.zeros(periods * PERIOD, dtype=np.int16)
    gains, cpu = np.zeros(periods), np.zeros(periods)
    stats = None
    for k in range(periods):
        if stats_at_sample is not None and k == stats_at_sample // PERIOD:
            stats = stage.stats()
        span = slice(k * PERIOD, (k + 1) * PERIOD)
        reference.played(far[span].tobytes(), 1, queued)
        before = clock()
        processed = stage.process(mic[span].tobytes())
        cpu[k] = clock() - before
        out[span] = np.frombuffer(processed, dtype=np.int16)
        gains[k] = stage.gain_db
    return Run(out, gains, cpu, stats)


def _frame_powers(samples: np.ndarray) -> np.ndarray:
    count = len(samples) // PERIOD
    values = samples[:count * PERIOD].astype(np.float64).reshape(count, PERIOD)
    return np.mean(values * values, axis=1)


def erle_db(mic: np.ndarray, run: Run, start: int, end: int) -> float:
    """Echo return loss enhancement from sample `start` to `end` (whole periods): the power
    the microphone heard over the power let through, the automatic gain taken out."""
    first, last = start // PERIOD, end // PERIOD
    heard = _frame_powers(mic)[first:last]
    through = _frame_powers(run.out)[first:last] / 10 ** (run.gain_db[first:last] / 10)
    return float(10 * np.log10(heard.sum() / through.sum()))


def near_loss_db(s: Scenario, run: Run) -> float:
    """How much quieter the near end's talk comes out in double talk: its power over the
    output's, the automatic gain taken out, over the periods in which it talks (within 20 dB
    of its loudest). What is left of the echo counts as near end: an ERLE of 25 dB or more
    adds at most 0.02 dB here."""
    first = s.double_talk_from // PERIOD + 1
    last = len(run.out) // PERIOD
    near = _frame_powers(s.near)[first:last]
    through = _frame_powers(run.out)[first:last] / 10 ** (run.gain_db[first:last] / 10)
    talking = near > near.max() / 100
    return float(10 * np.log10(near[talking].sum() / through[talking].sum()))
