"""ALSA devices without a sound card: the `file` plugin over a `null` slave.

`write_asoundrc(directory, infile=..., outfile=...)` writes a self-contained ALSA configuration
with two PCMs: `kiosk_capture` reads raw s16 samples from `infile`, `kiosk_playback` appends
what is played to `outfile` (raw s16). Point ALSA_CONFIG_PATH at it before opening a device:

    monkeypatch.setenv("ALSA_CONFIG_PATH", str(write_asoundrc(tmp_path, ...)))

ALSA_CONFIG_PATH replaces the system's top-level configuration (alsa.conf), but `file` and
`null` are built into libasound and the slave is defined inline, so nothing else is needed.
libasound looks at the variable again on every open (and reloads when it changed), so one
process can use several such files in turn. Neither plugin is clocked: reads and writes return
at once, and the back ends pace themselves by the wall clock. Past the end of `infile` the
file plugin returns whatever is in the buffer, not silence: make the file longer than the test.

Also here: the analysis the tests and bench/audio_alsa.py share (frequency, level, gaps) and
`mic_to_speaker_call`, a microphone-to-speaker loop through two in-process peer connections,
with the microphone and speaker opened from a config (`plugin_config`) as the daemon opens them.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kioskd.config import Config

CAPTURE_PCM = "kiosk_capture"
PLAYBACK_PCM = "kiosk_playback"
RATE = 48000


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_asoundrc(
    directory: Path, *, infile: Path | None = None, outfile: Path | None = None
) -> Path:
    """ALSA configuration: kiosk_capture reads infile, kiosk_playback writes outfile."""
    blocks = []
    if infile is not None:
        blocks.append(
            f"pcm.{CAPTURE_PCM} {{\n"
            "    type file\n"
            "    slave.pcm { type null }\n"
            '    file "/dev/null"\n'  # the file plugin also records what is captured: discard it
            f"    infile {_quoted(infile)}\n"
            '    format "raw"\n'
            "}\n"
        )
    if outfile is not None:
        blocks.append(
            f"pcm.{PLAYBACK_PCM} {{\n"
            "    type file\n"
            "    slave.pcm { type null }\n"
            f"    file {_quoted(outfile)}\n"
            '    format "raw"\n'
            "}\n"
        )
    path = directory / "asoundrc"
    path.write_text("\n".join(blocks))
    return path


def write_tone(
    path: Path, frequency: float, seconds: float, amplitude: float = 0.5, rate: int = RATE
) -> None:
    """A raw s16 little-endian mono sine file."""
    t = np.arange(round(seconds * rate)) / rate
    samples = np.round(np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype("<i2")
    samples.tofile(path)


def read_raw(path: Path) -> np.ndarray:
    """A raw s16 little-endian mono file as int16 samples."""
    return np.fromfile(path, dtype="<i2")


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """The frequency of the strongest spectral peak, interpolated between FFT bins (Hz)."""
    values = samples.astype(np.float64)
    values -= values.mean()
    spectrum = np.abs(np.fft.rfft(values * np.hanning(len(values))))
    peak = int(np.argmax(spectrum[1:-1])) + 1
    # A parabola through the log magnitudes of the peak and its neighbours.
    a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
    return float((peak + offset) * rate / len(values))


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level relative to full scale (a full-scale sine is -3 dBFS)."""
    values = samples.astype(np.float64) / 32768
    mean_square = float(np.mean(values * values)) if values.size else 0.0
    return 10 * math.log10(mean_square) if mean_square > 0 else -120.0


def sound_span(
    samples: np.ndarray, rate: int = RATE, window_ms: float = 5, threshold_dbfs: float = -50
) -> tuple[np.ndarray, float]:
    """(the samples from the first to the last sound, the longest silence within them in ms).

    Sound and silence are judged per `window_ms` window by its RMS against `threshold_dbfs`.
    """
    window = max(1, round(rate * window_ms / 1000))
    count = len(samples) // window
    if count == 0:
        return samples[:0], 0.0
    blocks = samples[: count * window].astype(np.float64).reshape(count, window) / 32768
    loud = np.mean(blocks * blocks, axis=1) > 10 ** (threshold_dbfs / 10)
    if not loud.any():
        return samples[:0], 0.0
    first = int(np.argmax(loud))
    last = count - 1 - int(np.argmax(loud[::-1]))
    longest = run = 0
    for is_loud in loud[first : last + 1]:
        run = 0 if is_loud else run + 1
        longest = max(longest, run)
    return samples[first * window : (last + 1) * window], longest * window * 1000 / rate


def analyse(samples: np.ndarray, expected_hz: float, rate: int = RATE) -> dict[str, float]:
    """Frequency (and its error from `expected_hz`), level and longest gap of a recording."""
    sound, gap_ms = sound_span(samples, rate)
    if not sound.size:
        return {"seconds": 0.0, "frequency_hz": 0.0, "frequency_error_pct": 100.0,
                "level_dbfs": -120.0, "longest_gap_ms": 0.0}
    frequency = dominant_frequency(sound, rate)
    return {
        "seconds": round(len(sound) / rate, 3),
        "frequency_hz": round(frequency, 3),
        "frequency_error_pct": round(abs(frequency - expected_hz) / expected_hz * 100, 4),
        "level_dbfs": round(level_dbfs(sound), 2),
        "longest_gap_ms": round(gap_ms, 1),
    }


def plugin_config(*overrides: str) -> Config:
    """The kiosk's config with its microphone on kiosk_capture and its speaker on
    kiosk_playback (`overrides`: more `section.key=value` settings).

    Noise suppression and auto gain are off: a steady test tone is the kind of sound noise
    suppression removes, and auto gain moves its level; these loops measure the transport
    (the processing has its own test: tests/unit/test_echo_cancellation.py)."""
    from kioskd.config import load_config

    return load_config(None, ["audio.source=alsa", "audio.sink=alsa",
                              f"audio.capture_device={CAPTURE_PCM}",
                              f"audio.playback_device={PLAYBACK_PCM}",
                              "audio.noise_suppression=false", "audio.auto_gain=false",
                              *overrides])


async def mic_to_speaker_call(seconds: float, config: Config | None = None) -> dict[str, object]:
    """kiosk_capture -> AlsaMicrophone -> Opus -> loopback -> Opus -> AlsaSpeaker -> kiosk_playback.

    The microphone and the speaker are the ones `config` (default `plugin_config()`) selects,
    opened through kioskd.media.opening as the daemon opens them. Two in-process peer
    connections without ICE servers; ALSA_CONFIG_PATH must name a file from write_asoundrc,
    and the process must be in a loopback-only namespace. Plays for `seconds` of received
    audio; returns the microphone's and the speaker's stats.
    """
    from aiortc import RTCConfiguration, RTCPeerConnection
    from kioskd.media import opening, registry

    config = config if config is not None else plugin_config()
    caller = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    kiosk = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    opened = await asyncio.to_thread(opening.open_configured, registry.AUDIO_SOURCES, config)
    microphone = opened.track
    speaker = opening.configured_speaker(config)
    try:
        caller.addTrack(microphone)
        kiosk.on("track", speaker.add_track)
        await speaker.start()
        await caller.setLocalDescription(await caller.createOffer())
        await kiosk.setRemoteDescription(caller.localDescription)
        await kiosk.setLocalDescription(await kiosk.createAnswer())
        await caller.setRemoteDescription(kiosk.localDescription)
        frames = round(seconds * 50)
        await speaker.wait_for_frames(audio=frames, timeout=seconds + 15)
        return {"microphone": microphone.stats(), "speaker": speaker.stats()}
    finally:
        await speaker.stop()
        microphone.stop()
        await asyncio.gather(caller.close(), kiosk.close())
