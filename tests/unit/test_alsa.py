"""ALSA microphone and speaker, without a sound card: ALSA's file plugin over a null slave."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import logging
import time
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

alsaaudio = pytest.importorskip(
    "alsaaudio", reason="pyalsaaudio is not installed (scripts/setup.sh --test installs it)"
)

from kioskd.media import alsa  # noqa: E402
from kioskd.media.alsa import AlsaDeviceError, AlsaMicrophone, AlsaSpeaker  # noqa: E402
from kioskd.media.echo_reference import EchoReference  # noqa: E402
from kioskd.media.processing import ProcessingOptions, library_version  # noqa: E402
from kioskd.media.synthetic import SyntheticTone  # noqa: E402

from tests.support.alsa_file_plugin import (  # noqa: E402
    CAPTURE_PCM,
    PLAYBACK_PCM,
    analyse,
    dominant_frequency,
    mic_to_speaker_call,
    read_raw,
    write_asoundrc,
    write_tone,
)


@pytest.fixture
def devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """kiosk_capture plays a 1 kHz tone at -9 dBFS (10 s); kiosk_playback records to out.raw."""
    tone, out = tmp_path / "tone.raw", tmp_path / "out.raw"
    write_tone(tone, 1000.0, seconds=10, amplitude=0.5)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(write_asoundrc(tmp_path, infile=tone, outfile=out)))
    return {"tone": tone, "out": out}


# -- the microphone -----------------------------------------------------------------------


async def test_microphone_captures_the_tone_paced_by_the_stream_clock(devices: dict[str, Path]):
    microphone = AlsaMicrophone(CAPTURE_PCM)
    frames = [await microphone.recv()]
    started = time.monotonic()
    cpu = time.process_time()
    for _ in range(50):
        frames.append(await microphone.recv())
    elapsed = time.monotonic() - started
    cpu_s = time.process_time() - cpu
    stats = microphone.stats()
    microphone.stop()

    # 50 periods of 20 ms in about a second, although the plugin returns at once.
    assert 0.9 < elapsed < 1.4
    assert all(f.format.name == "s16" and f.layout.name == "mono" for f in frames)
    assert all(f.samples == 960 and f.sample_rate == 48000 for f in frames)
    assert all(f.time_base == fractions.Fraction(1, 48000) for f in frames)
    pts = [f.pts for f in frames]
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert pts[0] == 0 and all(step >= 960 and step % 960 == 0 for step in steps)
    samples = np.concatenate([f.to_ndarray().ravel() for f in frames])
    assert dominant_frequency(samples) == pytest.approx(1000, rel=0.01)
    # The capture thread paced itself too: it did not race through the file (that would
    # show as dropped periods) nor spin (CPU), and the first frame was audio, not silence.
    # (Racing through the 10 s file would drop hundreds of periods; a loaded machine that
    # wakes a thread late may cost a few.)
    assert stats["clocked"] is False
    assert stats["dropped_periods"] <= 10 and stats["underruns"] <= 5
    assert np.abs(frames[0].to_ndarray()).max() > 10000
    assert cpu_s < 0.5


async def test_microphone_recv_after_stop_raises(devices: dict[str, Path]):
    microphone = AlsaMicrophone(CAPTURE_PCM)
    await microphone.recv()
    microphone.stop()
    with pytest.raises(MediaStreamError):
        await microphone.recv()
    # Stopping a microphone that never started closes its device too.
    AlsaMicrophone(CAPTURE_PCM).stop()


@pytest.mark.parametrize("direction", ["capture", "playback"])
async def test_a_missing_device_is_a_clear_error(devices: dict[str, Path], direction: str):
    with pytest.raises(AlsaDeviceError) as error:
        if direction == "capture":
            AlsaMicrophone("kiosk_nosuch")
        else:
            await AlsaSpeaker("kiosk_nosuch").start()
    message = str(error.value)
    assert error.value.reason == "missing"
    assert f'ALSA {direction} device "kiosk_nosuch"' in message
    assert ("arecord -L" if direction == "capture" else "aplay -L") in message
    assert f"audio.{direction}_device" in message


def test_a_busy_device_says_what_to_do():
    message = alsa._advice("capture", "hw:1", "Device or resource busy")
    assert 'device "hw:1"' in message and "another program is using it" in message


@pytest.mark.parametrize("error, reason", [
    ("Device or resource busy", "busy"),  # EBUSY: another program has the card
    ("No such file or directory", "missing"),  # an unknown PCM name, or card number
    ("No such device", "missing"),  # plughw:CARD=Name of a card that is not there
    ("Permission denied", "denied"),
    ("Input/output error", "failed"),
])
def test_alsa_errors_have_a_reason(error, reason):
    assert alsa._reason(error) == reason


class FakePcm:
    """A PCM that works `good` times and then fails as a pulled-out USB device does."""

    def __init__(self, good: int) -> None:
        self.good, self.calls, self.closed = good, 0, False

    def _transfer(self) -> None:
        self.calls += 1
        if self.calls > self.good:
            raise alsaaudio.ALSAAudioError("No such device [fake]")

    def read(self) -> tuple[int, bytes]:
        self._transfer()
        return 960, np.full(960, 1000, dtype="<i2").tobytes()

    def write(self, data: bytes) -> int:
        self._transfer()
        return len(data) // 2

    def close(self) -> None:
        self.closed = True


def fake_device(monkeypatch: pytest.MonkeyPatch, good: int) -> FakePcm:
    pcm = FakePcm(good)
    monkeypatch.setattr(alsa, "open_pcm", lambda *args: (pcm, {"period_size": 960,
                                                               "buffer_size": 2880}))
    return pcm


class ClockedPcm:
    """A PCM with a clock, as a sound card has: a read waits until its period has been
    captured; a write waits while the card's buffer (three periods) is full."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.frames = 0
        self.closed = False

    def _wait_for(self, frames: int) -> None:
        if self.start is None:
            self.start = time.monotonic()
        delay = self.start + frames / 48000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def read(self) -> tuple[int, bytes]:
        self.frames += 960
        self._wait_for(self.frames)
        return 960, np.full(960, 1000, dtype="<i2").tobytes()

    def write(self, data: bytes) -> int:
        self.frames += len(data) // 2
        self._wait_for(self.frames - 2880)
        return len(data) // 2

    def close(self) -> None:
        self.closed = True


def clocked_device(monkeypatch: pytest.MonkeyPatch) -> ClockedPcm:
    pcm = ClockedPcm()
    monkeypatch.setattr(alsa, "open_pcm", lambda *args: (pcm, {"period_size": 960,
                                                               "buffer_size": 2880}))
    return pcm


async def test_microphone_on_a_clocked_device_follows_the_device(
    monkeypatch: pytest.MonkeyPatch,
):
    pcm = clocked_device(monkeypatch)
    microphone = AlsaMicrophone("card")
    frames = [await microphone.recv() for _ in range(50)]
    stats = microphone.stats()
    microphone.stop()
    assert stats["clocked"] is True
    # Captured audio, not silence: the stream clock runs half a period behind the card's, so
    # a period that comes a little late is still in time (none is missed on an idle machine;
    # a busy one may wake the thread later than that now and then).
    assert stats["underruns"] <= 3 and stats["dropped_periods"] == 0
    assert sum(np.all(f.to_ndarray() == 1000) for f in frames) >= 47
    assert pcm.frames <= 53 * 960  # the thread read only what the card had


async def test_speaker_on_a_clocked_device_is_paced_by_the_device(
    monkeypatch: pytest.MonkeyPatch,
):
    pcm = clocked_device(monkeypatch)
    tone = SyntheticTone(440.0)
    speaker = AlsaSpeaker("card")
    speaker.add_track(tone)
    await speaker.start()
    started = time.monotonic()
    await speaker.wait_for_frames(audio=50, timeout=5)
    elapsed = time.monotonic() - started
    written_s = pcm.frames / 48000
    stats = speaker.stats()
    await speaker.stop()
    tone.stop()
    assert stats["device_clocked"] is True
    assert stats["playout_underruns"] == 0 and stats["playout_drops"] == 0
    # The card took what the time holds plus its buffer (60 ms): the thread followed the
    # card, not a clock of its own as well.
    assert elapsed < written_s < elapsed + 0.15


async def test_microphone_that_fails_mid_stream_ends_its_track(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    pcm = fake_device(monkeypatch, good=5)
    microphone = AlsaMicrophone("fake", clocked=False)
    ended = asyncio.Event()
    microphone.on("ended", ended.set)
    received = 0
    with caplog.at_level(logging.ERROR, logger="kioskd.media.alsa"), pytest.raises(
        MediaStreamError
    ):
        for _ in range(50):
            await microphone.recv()
            received += 1
    assert 5 <= received < 20  # the five periods, perhaps some silence, then the end
    assert microphone.readyState == "ended" and ended.is_set()
    assert pcm.closed and "No such device" in microphone.stats()["error"]
    assert 'microphone "fake" failed' in caplog.text and "the call goes on" in caplog.text


# -- the speaker --------------------------------------------------------------------------


async def test_speaker_plays_a_tone_into_the_file_without_gaps(devices: dict[str, Path]):
    tone = SyntheticTone(440.0, amplitude=0.5)
    speaker = AlsaSpeaker(PLAYBACK_PCM)
    speaker.add_track(tone)
    await speaker.start()
    await speaker.wait_for_frames(audio=100, timeout=10)  # 2 s of tone
    stats = speaker.stats()
    await speaker.stop()
    tone.stop()

    result = analyse(read_raw(devices["out"]), 440.0)
    assert result["seconds"] > 1.8
    assert result["frequency_error_pct"] < 1
    assert result["level_dbfs"] == pytest.approx(-9.03, abs=0.5)  # a sine of amplitude 0.5
    assert result["longest_gap_ms"] <= 40
    assert stats["device_clocked"] is False and stats["device_error"] is None
    assert stats["playout_underruns"] == 0 and stats["playout_drops"] == 0
    assert stats["audio_level_dbfs"] == pytest.approx(-9.03, abs=0.5)  # the sink still measures


def test_speaker_drops_audio_beyond_its_maximum_buffer():
    speaker = AlsaSpeaker(PLAYBACK_PCM, buffer_ms=60, max_buffer_ms=200)
    # What aiortc's Opus decoder gives: 20 ms of 48 kHz stereo s16. A burst of 300 ms arrives
    # with nothing playing it: past 200 ms the oldest audio is cut back to 60 ms, once.
    for index in range(15):
        samples = np.full((1, 1920), 1000, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, index * 960
        speaker._on_audio(frame)
    stats = speaker.stats()
    assert stats["audio_frames"] == 15  # every frame was still counted
    assert stats["playout_drops"] == 1 and stats["dropped_ms"] == 160
    assert stats["playout_buffer_ms"] == 140  # resampled to mono: 2 bytes a sample


def test_speaker_refills_after_running_dry():
    speaker = AlsaSpeaker(PLAYBACK_PCM, buffer_ms=60, max_buffer_ms=200)
    period = 960 * 2
    assert speaker._next_period(period) is None  # nothing yet: silence, not an underrun
    speaker._append(bytes(period * 2))
    assert speaker._next_period(period) is None  # 40 ms is below the 60 ms target
    speaker._append(bytes(period))
    assert speaker._next_period(period) == bytes(period)  # 60 ms: playing
    speaker._append(b"\1\0" * 480)  # 50 ms left in all
    assert speaker._next_period(period) == bytes(period)
    assert speaker._next_period(period) == bytes(period)
    assert speaker._next_period(period) == b"\1\0" * 480 + bytes(960)  # ran dry: padded
    assert speaker.stats()["playout_underruns"] == 1
    assert speaker._next_period(period) is None  # refilling


async def test_speaker_that_fails_mid_stream_keeps_draining(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    pcm = fake_device(monkeypatch, good=5)
    tone = SyntheticTone(440.0)
    speaker = AlsaSpeaker("fake", clocked=False)
    speaker.add_track(tone)
    with caplog.at_level(logging.ERROR, logger="kioskd.media.alsa"):
        await speaker.start()
        await speaker.wait_for_frames(audio=25, timeout=5)  # half a second after the failure
    stats = speaker.stats()
    await speaker.stop()
    tone.stop()
    assert pcm.closed and "No such device" in stats["device_error"]
    assert stats["audio_frames"] >= 25
    assert 'speaker "fake" failed' in caplog.text


# -- echo cancellation: the speaker's periods to the microphone's stage ---------------------


@pytest.mark.skipif(library_version() is None, reason="pywebrtc-audio is not installed")
async def test_the_speaker_feeds_the_microphones_echo_canceller(devices: dict[str, Path]):
    """Both threads meet at the kiosk's EchoReference: what the speaker writes reaches the
    microphone's stage, which processes every captured period on the capture thread."""
    reference = EchoReference()
    tone = SyntheticTone(440.0, amplitude=0.5)
    speaker = AlsaSpeaker(PLAYBACK_PCM, echo_reference=reference)
    microphone = AlsaMicrophone(CAPTURE_PCM, processing=ProcessingOptions(),
                                echo_reference=reference)
    speaker.add_track(tone)
    await speaker.start()
    try:
        await speaker.wait_for_frames(audio=10, timeout=10)
        for _ in range(75):  # 1.5 s
            await microphone.recv()
        stats = microphone.stats()["processing"]
    finally:
        microphone.stop()
        await speaker.stop()
        tone.stop()
    assert stats["state"] == "processing" and stats["library"].startswith("pywebrtc-audio")
    assert stats["echo_cancellation_active"] is True
    assert stats["noise_suppression"] and stats["high_pass_filter"] and stats["auto_gain"]
    assert stats["cpu_ms_per_s"] is not None
    # The plugins play at once: the hint is the 20 ms being captured and no device buffer.
    assert stats["delay_hint_ms"] is not None and stats["delay_hint_ms"] <= 40


@pytest.mark.skipif(library_version() is None, reason="pywebrtc-audio is not installed")
async def test_on_a_card_the_speakers_periods_pair_up_with_the_microphones(
    monkeypatch: pytest.MonkeyPatch,
):
    """A speaker and a microphone on one clock (a USB sound card): the reference waits as
    long as the speaker's buffer, so each period's echo is due at once (a delay hint of 0),
    and nothing is dropped or made up, from the first period on."""
    monkeypatch.setattr(alsa, "open_pcm", lambda *args: (ClockedPcm(), {"period_size": 960,
                                                                         "buffer_size": 2880}))
    reference = EchoReference()
    tone = SyntheticTone(440.0)
    speaker = AlsaSpeaker("card", echo_reference=reference)
    speaker.add_track(tone)
    await speaker.start()
    microphone = AlsaMicrophone("card", processing=ProcessingOptions(),
                                echo_reference=reference)
    try:
        for _ in range(100):  # 2 s
            await microphone.recv()
        stats = microphone.stats()["processing"]
    finally:
        microphone.stop()
        await speaker.stop()
        tone.stop()
    assert stats["echo_cancellation_active"] and stats["delay_hint_ms"] in (0, 20)
    # None on an idle machine; a capture or playback thread woken a period late may cost one.
    assert stats["reference_realignments"] <= 1, stats


async def test_a_speaker_on_a_card_gives_its_buffer_as_the_playback_delay(
    monkeypatch: pytest.MonkeyPatch,
):
    """pyalsaaudio 0.11 has no delay(); a device without avail() either counts as full."""
    clocked_device(monkeypatch)
    reference = EchoReference()
    tone = SyntheticTone(440.0)
    speaker = AlsaSpeaker("card", echo_reference=reference)
    speaker.add_track(tone)
    await speaker.start()
    await speaker.wait_for_frames(audio=10, timeout=5)
    chunk = reference.take(960)
    await speaker.stop()
    tone.stop()
    assert chunk is not None  # the speaker was writing into it
    assert reference._playback_delay == 2880  # the card's three periods


# -- the whole loop -----------------------------------------------------------------------


@pytest.mark.netns
async def test_microphone_to_speaker_through_a_peer_connection(devices: dict[str, Path]):
    stats = await mic_to_speaker_call(seconds=3)

    result = analyse(read_raw(devices["out"]), 1000.0)
    assert result["seconds"] > 2.5
    assert result["frequency_error_pct"] < 1
    # -9 dBFS in, -12 out: aiortc's Opus encoder makes a mono track stereo at -3 dB a channel
    # (libswresample's centre mix level); the speaker's stereo-to-mono mix keeps the level.
    assert result["level_dbfs"] == pytest.approx(-12.04, abs=1)
    # No gap at all here when the machine is idle (bench/audio_alsa.py measures it); this only
    # catches a broken loop, not a busy test machine.
    assert result["longest_gap_ms"] <= 100
    assert stats["microphone"]["error"] is None and stats["speaker"]["device_error"] is None


class FrozenOnceDevice:
    """An unclocked device (writes return at once) whose writer is frozen once, mid-probe, as
    a CPU quota's throttling freezes a thread; then, after `writes`, the speaker is stopped."""

    def __init__(self, speaker: AlsaSpeaker, writes: int, frozen_at: int) -> None:
        self.speaker, self.writes, self.frozen_at, self.count = speaker, writes, frozen_at, 0

    def write(self, data: bytes) -> int:
        self.count += 1
        if self.count == self.frozen_at:
            time.sleep(0.015)  # the freeze itself: three quarters of a 20 ms period
        if self.count >= self.writes:
            self.speaker._stopping.set()
        return len(data) // 2

    def close(self) -> None:
        pass


@pytest.mark.parametrize("frozen_at", [1, 3, 4, 5])
def test_one_slow_write_does_not_make_an_unclocked_speaker_clocked(frozen_at):
    speaker = AlsaSpeaker(PLAYBACK_PCM)
    device = FrozenOnceDevice(speaker, writes=12, frozen_at=frozen_at)
    speaker._play(device, period_frames=960, buffer_frames=3 * 960)
    assert speaker.clocked is False  # so it paces itself instead of spinning
