"""A real call in which the kiosk's microphone hears its own loudspeaker (issue 14).

The kiosk's speaker and microphone are ALSA devices of a private PipeWire, with a room between
them (tests/support/pipewire_echo.py: real audio in real time, a synthetic room's impulse
response, nothing else reaching the microphone). The scripted caller speaks (a seeded
speech-like signal, looped) and keeps what it receives. After the first seconds, in which the
path and any canceller settle, the level of what comes back is compared with the level the
caller sent, both RMS over whole loops of the speech.

The room gives back 6 dB more than the loudspeaker plays and each Opus leg loses 3 dB (a mono
track is sent as stereo at -3 dB a channel), so without echo cancellation the caller's speech
comes back about as loud as it was sent (0.0 dB measured with no other processing; the kiosk's
auto gain, on by default, makes it louder): clearly audible, no more than 15 dB down. With
echo cancellation it must come back at least 25 dB below what was sent.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.integration.conftest import connected_call, running_kiosk
from tests.support import pipewire_echo
from tests.support.alsa_file_plugin import level_dbfs
from tests.support.caller import ScriptedCaller
from tests.support.speech import speech_like

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]

SPEECH_S = 4.0  # one loop of what the caller says
SETTLE_S = 3.0  # not measured: the path fills, a canceller converges
MEASURE_S = 2 * SPEECH_S  # whole loops, so sent and received hold the same speech
FRAMES_PER_S = 50  # 20 ms audio frames

CANCELLATION_OFF = ("audio.echo_cancellation=false",)
CANCELLATION_ON = ("audio.echo_cancellation=true",)


def _envelope(samples: np.ndarray, block: int = 480) -> np.ndarray:
    """RMS per 10 ms."""
    count = len(samples) // block
    blocks = samples[: count * block].astype(np.float64).reshape(count, block)
    return np.sqrt(np.mean(blocks * blocks, axis=1))


def speech_similarity(received: np.ndarray, sent_loop: np.ndarray) -> float:
    """How well the loudness contour of `received` follows the looped speech, at the best
    circular shift (Pearson correlation of the 10 ms envelopes; 1 is the same contour)."""
    heard = _envelope(received)
    said = _envelope(np.resize(sent_loop, len(received)))[: len(heard)]
    heard, said = heard - heard.mean(), said - said.mean()
    norm = float(np.linalg.norm(heard) * np.linalg.norm(said))
    if norm == 0:
        return 0.0
    shifts = np.fft.irfft(np.fft.rfft(heard) * np.conj(np.fft.rfft(said)), len(heard))
    return float(shifts.max()) / norm


async def speech_coming_back(relay, echo_path, monkeypatch, *overrides: str) -> dict[str, float]:
    """Call the kiosk, speak, and measure what comes back."""
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(echo_path.asoundrc))
    speech = speech_like(SPEECH_S)
    caller = ScriptedCaller(relay.url, "alice-secret", send_audio=speech,
                            record_seconds=MEASURE_S)
    await caller.connect()
    try:
        async with running_kiosk(relay.url, "audio.source=alsa", "audio.sink=alsa",
                                 f"audio.capture_device={pipewire_echo.CAPTURE_PCM}",
                                 f"audio.playback_device={pipewire_echo.PLAYBACK_PCM}",
                                 *overrides) as kiosk:
            await connected_call(kiosk, caller, "audio")
            frames = round((SETTLE_S + MEASURE_S) * FRAMES_PER_S)
            await caller.sink.wait_for_frames(audio=frames, timeout=SETTLE_S + MEASURE_S + 15)
            received = caller.sink.recorded()
            speaker = kiosk.runner.media.speaker.stats()
            processing = kiosk.local_media.audio_processing()
    finally:
        await caller.close()
    assert speaker["device_error"] is None and speaker["played_periods"] > 0
    assert len(received) >= MEASURE_S * pipewire_echo.RATE * 0.99
    sent_db, received_db = level_dbfs(speech), level_dbfs(received)
    result = {"sent_dbfs": sent_db, "received_dbfs": received_db,
              "returned_db": received_db - sent_db,
              "similarity": speech_similarity(received, speech)}
    print(f"echo call {overrides}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items())
          + f"; processing {processing}")
    return result


async def test_caller_hears_own_speech_without_echo_cancellation(relay, echo_path,
                                                                 monkeypatch):
    result = await speech_coming_back(relay, echo_path, monkeypatch, *CANCELLATION_OFF)
    # Clearly audible; the kiosk's auto gain (on by default) may make it louder than sent.
    assert result["returned_db"] > -15
    assert result["similarity"] > 0.8  # it is the caller's speech that comes back


async def test_echo_cancellation_keeps_caller_speech_25_db_down(relay, echo_path, monkeypatch):
    result = await speech_coming_back(relay, echo_path, monkeypatch, *CANCELLATION_ON)
    assert result["returned_db"] <= -25
