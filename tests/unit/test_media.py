"""Media back ends: synthetic sources, the measuring sink, the registry, the display sink."""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import subprocess
import sys
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kioskd.media import registry
from kioskd.media.measure import MeasuringSink
from kioskd.media.null import NullAudioSink, NullVideoSink
from kioskd.media.stamp import read_stamp_from_frame
from kioskd.media.synthetic import SyntheticCamera, SyntheticTone

# -- synthetic sources -------------------------------------------------------------------


async def test_camera_delivers_stamped_frames_at_its_rate():
    camera = SyntheticCamera(320, 240, fps=30)
    frames = [await camera.recv()]
    started = time.monotonic()
    for _ in range(30):
        frames.append(await camera.recv())
    elapsed = time.monotonic() - started
    camera.stop()

    # 30 frame periods of 1/30 s; a busy CI machine may make the camera skip a slot or two
    # (it skips rather than bursts), so pts are slots of 3000, increasing, nearly all present.
    assert 0.9 < elapsed < 1.5
    assert all(f.format.name == "yuv420p" and (f.width, f.height) == (320, 240) for f in frames)
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    pts = [f.pts for f in frames]
    assert pts[0] == 0 and all(p % 3000 == 0 for p in pts)
    assert all(b > a for a, b in zip(pts, pts[1:])) and pts[-1] <= 3000 * 33
    stamps = [read_stamp_from_frame(f) for f in frames]
    assert [s[0] for s in stamps] == list(range(31))
    captures = [s[1] for s in stamps]
    assert 950 < captures[-1] - captures[0] < 1500
    assert abs(captures[-1] - time.time() * 1000 % 2**40) < 200


async def test_camera_skips_missed_slots_instead_of_bursting():
    camera = SyntheticCamera(320, 240, fps=50)
    first = await camera.recv()
    await asyncio.sleep(0.2)  # a consumer that fell ten frames behind
    late = await camera.recv()
    started = time.monotonic()
    following = await camera.recv()
    waited = time.monotonic() - started
    camera.stop()

    assert first.pts == 0
    assert late.pts >= 9 * 1800  # resumed at the slot of now: the pts kept real time
    assert following.pts == late.pts + 1800
    assert waited > 0.01  # paced again, not a burst of the missed frames
    assert [read_stamp_from_frame(f)[0] for f in (first, late, following)] == [0, 1, 2]


async def test_camera_at_720p_is_cheap():
    camera = SyntheticCamera(1280, 720, fps=30)
    await camera.recv()
    cpu = time.process_time()
    for _ in range(15):
        await camera.recv()
    per_frame_ms = (time.process_time() - cpu) / 15 * 1000
    camera.stop()
    assert per_frame_ms < 10  # about 1 ms here; 33 ms is the whole frame period


async def test_recv_after_stop_raises():
    for track in (SyntheticCamera(320, 240, 30), SyntheticTone()):
        await track.recv()
        pending = asyncio.ensure_future(track.recv())  # asleep until its slot
        track.stop()
        with pytest.raises(MediaStreamError):
            await pending
        with pytest.raises(MediaStreamError):
            await track.recv()
        assert track.readyState == "ended"


@pytest.mark.parametrize("frequency", [440.0, 1000.0])
async def test_tone_is_a_continuous_sine_at_its_frequency(frequency: float):
    tone = SyntheticTone(frequency=frequency, amplitude=0.3)
    frames = [await tone.recv()]
    started = time.monotonic()
    for _ in range(24):
        frames.append(await tone.recv())
    elapsed = time.monotonic() - started
    tone.stop()

    assert 0.42 < elapsed < 0.65  # 24 frames of 20 ms
    for index, frame in enumerate(frames):
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert frame.samples == 960 and frame.sample_rate == 48000
        assert frame.pts == 960 * index and frame.time_base == fractions.Fraction(1, 48000)
    signal = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)

    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    peak = int(np.argmax(spectrum))
    # Parabolic interpolation of the peak between its neighbouring bins.
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2])
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    measured = (peak + offset) * 48000 / signal.size
    assert abs(measured - frequency) < 0.01 * frequency

    # Continuous phase: the frames join into one sine, to within rounding.
    ideal = 0.3 * 32767 * np.sin(2 * np.pi * frequency * np.arange(signal.size) / 48000)
    assert np.max(np.abs(signal - ideal)) <= 1.0


async def test_a_camera_too_small_for_a_stamp_still_runs():
    camera = SyntheticCamera(16, 16, fps=30)
    frame = await camera.recv()
    camera.stop()
    assert (frame.width, frame.height) == (16, 16)
    assert read_stamp_from_frame(frame) is None


def test_bad_source_parameters():
    with pytest.raises(ValueError):
        SyntheticCamera(320, 240, fps=0)
    with pytest.raises(ValueError):
        SyntheticCamera(321, 240)
    with pytest.raises(ValueError):
        SyntheticCamera(8, 8)
    with pytest.raises(ValueError):
        SyntheticTone(frequency=30000)
    with pytest.raises(ValueError):
        SyntheticTone(amplitude=2)


# -- the measuring sink --------------------------------------------------------------------


async def test_measuring_sink_counts_stamps_and_level():
    camera, tone = SyntheticCamera(320, 240, fps=30), SyntheticTone(amplitude=0.3)
    seen: list[av.VideoFrame] = []
    sink = MeasuringSink(on_video_frame=seen.append)
    sink.add_track(camera)
    await sink.start()
    sink.add_track(tone)  # tracks can come after start, as remote tracks do
    try:
        await sink.wait_for_frames(video=8, audio=10, timeout=5)
    finally:
        camera.stop()
        tone.stop()
        await sink.stop()

    stats = sink.stats()
    json.dumps(stats)
    assert stats["video_frames"] >= 8 and stats["audio_frames"] >= 10
    assert stats["stamps_decoded"] == stats["video_frames"] == len(seen)
    assert stats["last_counter"] == stats["video_frames"] - 1
    assert 0 <= stats["latency_ms_p50"] <= stats["latency_ms_p95"] < 100
    assert stats["video_size"] == [320, 240]
    assert stats["audio_samples"] == 960 * stats["audio_frames"]
    assert stats["first_video_at"] <= time.monotonic()
    # A sine of amplitude A has an RMS of A/sqrt(2).
    assert stats["audio_level_dbfs"] == pytest.approx(20 * math.log10(0.3 / math.sqrt(2)), abs=0.1)


async def test_wait_for_frames_times_out():
    camera = SyntheticCamera(320, 240, fps=30)
    sink = NullVideoSink()
    sink.add_track(camera)
    await sink.start()
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await sink.wait_for_frames(video=1000, timeout=0.3)
    assert 0.25 < time.monotonic() - started < 1.0
    await sink.wait_for_frames(video=1, timeout=5)  # still draining after a timeout
    camera.stop()
    await sink.stop()


async def test_wait_for_nothing_returns_at_once():
    sink = NullAudioSink()
    await sink.wait_for_frames(timeout=0.001)
    assert sink.stats()["audio_level_dbfs"] is None
    assert sink.stats()["latency_ms_p50"] is None


class EndingTrack(MediaStreamTrack):
    """Gives `count` silent audio frames at once, then ends."""

    kind = "audio"

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    async def recv(self) -> av.AudioFrame:
        if self.count == 0:
            self.stop()
            raise MediaStreamError
        self.count -= 1
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 48000
        return frame


async def test_a_track_that_ends_is_not_an_error_and_silence_has_a_level():
    sink = NullAudioSink()
    sink.add_track(EndingTrack(5))
    await sink.start()
    await sink.wait_for_frames(audio=5, timeout=5)
    await sink.stop()
    assert sink.audio_frames == 5
    assert sink.stats()["audio_level_dbfs"] == -120.0


async def test_a_failing_frame_consumer_does_not_stop_the_drain():
    def broken(frame: av.VideoFrame) -> None:
        raise RuntimeError("boom")

    camera = SyntheticCamera(320, 240, fps=60)
    sink = MeasuringSink(on_video_frame=broken)
    sink.add_track(camera)
    await sink.start()
    await sink.wait_for_frames(video=3, timeout=5)
    camera.stop()
    await sink.stop()


# -- the registry ------------------------------------------------------------------------


def test_registry_resolves_known_names():
    assert registry.resolve(registry.VIDEO_SOURCES, "synthetic") is SyntheticCamera
    assert registry.resolve(registry.AUDIO_SOURCES, "synthetic") is SyntheticTone
    assert registry.resolve(registry.AUDIO_SINKS, "null") is NullAudioSink
    assert registry.resolve(registry.VIDEO_SINKS, "none") is NullVideoSink


def test_registry_names_the_known_back_ends_for_an_unknown_one():
    with pytest.raises(registry.UnknownBackend) as caught:
        registry.resolve(registry.VIDEO_SOURCES, "foo")
    assert str(caught.value) == ('unknown video.source "foo"; '
                                 'known: file, picamera2, synthetic, v4l2')
    assert isinstance(caught.value, ValueError)
    with pytest.raises(registry.UnknownBackend, match='unknown display.mode "hdmi"; known: none'):
        registry.resolve(registry.VIDEO_SINKS, "hdmi")


def test_register_a_fake():
    table = registry.BackendTable("video.source", {})
    registry.register(table, "fake", "kioskd.media.synthetic:SyntheticCamera")
    registry.register(table, "class", SyntheticTone)
    assert registry.resolve(table, "fake") is SyntheticCamera
    assert registry.resolve(table, "class") is SyntheticTone
    with pytest.raises(ValueError):
        registry.register(table, "bad", "no_colon")
    registry.register(table, "missing", "kioskd.media.synthetic:Nothing")
    with pytest.raises(ImportError):
        registry.resolve(table, "missing")


def test_importing_the_registry_imports_no_back_end():
    code = (
        "import sys, kioskd.media.registry as r; "
        "print(sorted(m for m in sys.modules if m.startswith(('pygame', 'kioskd.media.', 'av'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['kioskd.media.registry']"


# -- the display sink --------------------------------------------------------------------


@pytest.fixture
def dummy_video(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


async def loop_lag_monitor(lags: list[float], stop: asyncio.Event) -> None:
    """Records how late 5 ms timers fire: a blocked loop shows as a long lag."""
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.005)
        lags.append(time.monotonic() - before - 0.005)


