"""A speech-like test signal, synthetic and seeded (the same every run, no recording needed).

Syllables of 120-280 ms, each a vowel (a voice with a wandering pitch, through the vowel's
formants) that may open with a fricative (band-passed noise); short gaps between syllables,
longer ones between words and phrases. Echo cancellers are tuned on speech: a steady tone
would tell little about one.
"""

from __future__ import annotations

import math

import numpy as np

RATE = 48000
# Formants (F1, F2, F3 in Hz) of some vowels, an adult voice.
VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410),
          (300, 870, 2240), (660, 1720, 2410), (490, 1350, 1690))  # fmt: skip
BANDWIDTHS = (90.0, 110.0, 170.0)


def _envelope(length: int, attack: int, release: int) -> np.ndarray:
    shape = np.ones(length)
    shape[:attack] = np.sin(np.linspace(0, math.pi / 2, attack)) ** 2
    shape[length - release :] = np.cos(np.linspace(0, math.pi / 2, release)) ** 2
    return shape


def _vowel(length: int, formants: tuple[int, ...], pitch_hz: np.ndarray) -> np.ndarray:
    """Additive synthesis: the harmonics of `pitch_hz`, weighted by the formants' resonances
    and a falling spectral tilt."""
    phase = 2 * math.pi * np.cumsum(pitch_hz) / RATE
    out = np.zeros(length)
    for harmonic in range(1, int(4000 / pitch_hz.min()) + 1):
        frequency = harmonic * pitch_hz
        weight = sum(1 / (1 + ((frequency - f) / b) ** 2)
                     for f, b in zip(formants, BANDWIDTHS, strict=True))
        out += np.sin(harmonic * phase) * weight / harmonic**0.5 * (frequency < 4500)
    return out


def _fricative(length: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length, 1 / RATE)
    spectrum[(frequencies < 2500) | (frequencies > 9000)] = 0
    return np.fft.irfft(spectrum, length)


def speech_like(seconds: float, level_dbfs: float = -26.0, seed: int = 14) -> np.ndarray:
    """`seconds` of mono s16 speech-like audio at 48 kHz, `level_dbfs` RMS over the whole
    (-26 dBFS: telephony's nominal speech level)."""
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    out = np.zeros(total)
    position = 0
    base_pitch = 140.0
    syllable = 0
    while position < total:
        length = round(rng.uniform(0.12, 0.28) * RATE)
        pitch_start, pitch_end = base_pitch * rng.uniform(0.85, 1.25, size=2)
        pitch = np.linspace(pitch_start, pitch_end, length)
        voice = _vowel(length, VOWELS[rng.integers(len(VOWELS))], pitch)
        voice /= max(1e-9, float(np.sqrt(np.mean(voice * voice))))
        sound = voice * _envelope(length, length // 5, length // 3)
        if rng.random() < 0.4:
            hiss = round(rng.uniform(0.04, 0.09) * RATE)
            noise = _fricative(hiss, rng)
            noise *= 0.5 / max(1e-9, float(np.sqrt(np.mean(noise * noise))))
            sound = np.concatenate([noise * _envelope(hiss, hiss // 4, hiss // 4), sound])
        end = min(total, position + len(sound))
        out[position:end] = sound[: end - position]
        syllable += 1
        # A short gap within a word, a longer one between words and after a phrase.
        gap = 0.03 if rng.random() < 0.6 else 0.12
        if syllable % 9 == 0:
            gap = 0.35
            base_pitch = rng.uniform(110, 180)
        position = end + round(gap * RATE)
    out *= 10 ** (level_dbfs / 20) / float(np.sqrt(np.mean(out * out)))
    return np.round(np.clip(out, -1, 1) * 32767).astype(np.int16)
