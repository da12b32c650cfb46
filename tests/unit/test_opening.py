"""Opening a device with the fallbacks: busy -> retry with backoff, refused mode -> basic;
and opening what the config names, with each back end's own settings."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from kioskd.config import Config
from kioskd.media import opening, registry
from kioskd.media.capture import CameraUnavailable, DeviceUnavailable
from kioskd.media.echo_reference import EchoReference
from kioskd.media.file import FileCamera
from kioskd.media.null import NullAudioSink, NullVideoSink
from kioskd.media.opening import BASIC_VIDEO, Opened, describe, open_device
from kioskd.media.picamera2 import Picamera2Camera
from kioskd.media.processing import ProcessingOptions
from kioskd.media.synthetic import SyntheticCamera, SyntheticTone
from kioskd.media.v4l2 import V4l2Camera


class FakeClock:
    """time.monotonic and time.sleep for the retry loop: sleeping moves the clock on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Device:
    """A factory that fails with the given reasons, in turn, then opens."""

    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.calls: list[dict] = []

    def __call__(self, **options):
        self.calls.append(options)
        if self.failures:
            reason = self.failures.pop(0)
            raise CameraUnavailable(f"camera 0 is {reason}", reason)
        return ("track", options)


MODE = {"width": 1280, "height": 720, "fps": 30}


def run(device: Device, modes=(MODE,), budget_s: float = 2.5, rand=lambda: 1.0):
    clock = FakeClock()
    result = open_device(device, list(modes), "video.source 'fake'", budget_s=budget_s,
                         rand=rand, sleep=clock.sleep, clock=clock.clock)
    return result, clock


def test_a_free_device_opens_at_once():
    opened, clock = run(Device())
    assert opened == Opened(("track", MODE)) and clock.sleeps == []


def test_a_busy_device_is_retried_with_capped_exponential_backoff(caplog):
    caplog.set_level(logging.WARNING, logger="kioskd.media.opening")
    device = Device("busy", "busy", "busy", "busy")
    opened, clock = run(device, budget_s=10)
    assert opened.track == ("track", MODE) and len(device.calls) == 5
    # rand=1: the top of each full-jitter range, base 0.2 s doubling up to the 1 s cap.
    assert clock.sleeps == [0.2, 0.4, 0.8, 1.0]
    retries = [r.getMessage() for r in caplog.records]
    assert retries == ["video.source 'fake' is busy: camera 0 is busy; retry 1 in 0.20 s",
                       "video.source 'fake' is still busy; retry 2 in 0.40 s",
                       "video.source 'fake' is still busy; retry 3 in 0.80 s",
                       "video.source 'fake' is still busy; retry 4 in 1.00 s"]


def test_retries_use_full_jitter_but_never_spin():
    draws = iter([0.5, 0.0, 0.25])
    _, clock = run(Device("busy", "busy", "busy"), rand=lambda: next(draws))
    assert clock.sleeps == [0.1, opening.BUSY_RETRY_MIN_S, 0.2]


def test_a_device_busy_throughout_gives_up_within_the_budget():
    device = Device(*["busy"] * 100)
    with pytest.raises(CameraUnavailable) as error:
        run(device, budget_s=2.5)
    assert error.value.reason == "busy"
    assert "camera 0 is busy (still busy after" in str(error.value)
    # 0.2 + 0.4 + 0.8 + 1.0 = 2.4 s of waiting; one more second would pass the 2.5 s budget.
    assert len(device.calls) == 5


def test_the_default_budget_is_the_module_constant(monkeypatch):
    monkeypatch.setattr(opening, "BUSY_RETRY_S", 0.5)
    clock = FakeClock()
    device = Device(*["busy"] * 100)
    with pytest.raises(CameraUnavailable):
        open_device(device, [MODE], "x", rand=lambda: 1.0, sleep=clock.sleep, clock=clock.clock)
    assert clock.sleeps == [0.2]  # 0.2 + 0.4 would pass 0.5 s


@pytest.mark.parametrize("reason", ["missing", "denied", "failed"])
def test_other_errors_are_not_retried(reason):
    device = Device(reason)
    with pytest.raises(CameraUnavailable) as error:
        run(device)
    assert error.value.reason == reason and len(device.calls) == 1


def test_a_refused_mode_falls_back_to_the_basic_settings(caplog):
    caplog.set_level(logging.WARNING, logger="kioskd.media.opening")
    device = Device("unsupported")
    opened, _ = run(device, modes=[MODE, *Picamera2Camera.fallback_modes(MODE)])
    assert device.calls == [MODE, BASIC_VIDEO]
    assert opened.fallback == "refused 1280x720@30; using the basic settings 640x480@24"
    assert "refused 1280x720@30 (camera 0 is unsupported); trying the basic settings " \
        "640x480@24" in caplog.records[0].getMessage()


def test_a_basic_mode_that_is_busy_is_retried_too():
    device = Device("unsupported", "busy")
    opened, clock = run(device, modes=[MODE, *Picamera2Camera.fallback_modes(MODE)])
    assert len(device.calls) == 3 and opened.fallback and len(clock.sleeps) == 1


def test_when_every_mode_is_refused_the_last_error_is_raised():
    device = Device("unsupported", "unsupported", "unsupported")
    v4l2 = {**MODE, "device": "/dev/video0", "input_format": "mjpeg"}
    with pytest.raises(DeviceUnavailable) as error:
        run(device, modes=[v4l2, *V4l2Camera.fallback_modes(v4l2)])
    assert error.value.reason == "unsupported"
    assert [c["input_format"] for c in device.calls] == ["mjpeg", "mjpeg", "yuyv422"]


def test_basic_modes():
    picamera2 = {"width": 1280, "height": 720, "fps": 30, "encode": "hardware",
                 "bitrate": 2_500_000}
    assert Picamera2Camera.fallback_modes(picamera2) == [{"width": 640, "height": 480, "fps": 24,
                                       "encode": "hardware", "bitrate": None}]
    v4l2 = {"width": 1280, "height": 720, "fps": 30, "device": "/dev/video0",
            "input_format": "mjpeg"}
    assert [describe(m) for m in V4l2Camera.fallback_modes(v4l2)] == ["mjpeg 640x480@24", "yuyv422 640x480@24"]
    # Already basic: only the other input format is left to try.
    assert [describe(m) for m in V4l2Camera.fallback_modes({**v4l2, **BASIC_VIDEO})] == ["yuyv422 640x480@24"]
    assert Picamera2Camera.fallback_modes(BASIC_VIDEO) == []


# -- what the config names: each back end's own settings --------------------------------------


def config_with(**sections) -> Config:
    """The default config with some keys of some sections replaced (no loader: the import
    check of load_config is tested in test_config.py)."""
    config = Config()
    return dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **keys)
                                          for name, keys in sections.items()})


VIDEO = {"width": 1280, "height": 720, "fps": 30}


def test_each_camera_reads_its_own_settings():
    assert SyntheticCamera.settings(config_with(video=VIDEO)) == VIDEO
    v4l2 = config_with(video={**VIDEO, "source": "v4l2", "device": "/dev/video3",
                              "input_format": "yuyv422"})
    assert V4l2Camera.settings(v4l2) == {**VIDEO, "device": "/dev/video3",
                                         "input_format": "yuyv422"}
    assert FileCamera.settings(config_with(video={**VIDEO, "file": "/srv/demo.mp4"})) == {
        **VIDEO, "path": "/srv/demo.mp4"}
    assert Picamera2Camera.settings(config_with(video={**VIDEO, "encoder": "hardware",
                                                       "bitrate_kbps": 1500})) == {
        **VIDEO, "encode": "hardware", "bitrate": 1_500_000}
    assert Picamera2Camera.settings(config_with(video=VIDEO))["bitrate"] is None  # by size


def test_the_synthetic_tone_and_the_null_sinks_read_theirs():
    assert SyntheticTone.settings(config_with(audio={"tone_hz": 660.0})) == {"frequency": 660.0}
    assert NullAudioSink.settings(Config()) == {} and NullVideoSink.settings(Config()) == {}


def test_alsa_reads_its_devices_and_buffers():
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")
    from kioskd.media.alsa import AlsaMicrophone, AlsaSpeaker

    config = config_with(audio={"capture_device": "plughw:1,0", "playback_device": "dmix",
                                "playout_buffer_ms": 80, "max_playout_ms": 300})
    assert AlsaMicrophone.settings(config) == {
        "device": "plughw:1,0",
        # Noise suppression, high-pass and gain; no echo cancellation: audio.sink is "null".
        "processing": ProcessingOptions(echo_cancellation=False)}
    assert AlsaSpeaker.settings(config) == {"device": "dmix", "buffer_ms": 80,
                                            "max_buffer_ms": 300}


def test_the_kiosks_echo_reference_goes_to_the_alsa_microphone_and_speaker_only(
    tmp_path, monkeypatch,
):
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")
    from tests.support.alsa_file_plugin import plugin_config, write_asoundrc, write_tone

    tone = tmp_path / "tone.raw"
    write_tone(tone, 1000.0, seconds=1)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(write_asoundrc(tmp_path, infile=tone,
                                                              outfile=tmp_path / "out.raw")))
    reference = EchoReference()
    config = plugin_config("audio.echo_cancellation=true")
    microphone = opening.open_configured(registry.AUDIO_SOURCES, config,
                                         echo_reference=reference).track
    try:
        assert microphone.processing.reference is reference
        assert microphone.processing.options == ProcessingOptions(
            echo_cancellation=True, noise_suppression=False, auto_gain=False)
    finally:
        microphone.stop()
    assert opening.configured_speaker(config, reference).echo_reference is reference
    # The synthetic tone and the null sink take none (and are made as before).
    tone_track = opening.open_configured(registry.AUDIO_SOURCES, Config(),
                                         echo_reference=reference).track
    tone_track.stop()
    assert isinstance(opening.configured_speaker(Config(), reference), NullAudioSink)


def test_from_config_makes_the_back_end_with_overrides():
    camera = SyntheticCamera.from_config(config_with(video=VIDEO), fps=5)
    assert (camera.width, camera.height, camera.fps) == (1280, 720, 5)
    camera.stop()


def test_configured_modes_are_the_settings_then_the_back_ends_fallbacks():
    config = config_with(video={**VIDEO, "source": "v4l2", "device": "/dev/video3"})
    backend, modes, name = opening.configured_modes(registry.VIDEO_SOURCES, config)
    assert backend is V4l2Camera and name == "video.source 'v4l2'"
    assert [describe(m) for m in modes] == [
        "mjpeg 1280x720@30", "mjpeg 640x480@24", "yuyv422 640x480@24"]
    assert all(m["device"] == "/dev/video3" for m in modes)

    backend, modes, name = opening.configured_modes(registry.AUDIO_SOURCES, Config())
    assert backend is SyntheticTone and modes == [{"frequency": 440.0}]  # one mode only


def test_a_registered_fake_is_opened_with_the_settings_it_inherits(monkeypatch):
    made: list[dict] = []

    class FakeCamera(SyntheticCamera):
        def __init__(self, **options) -> None:
            made.append(options)
            super().__init__(**options)

    monkeypatch.setitem(registry.VIDEO_SOURCES, "fake", FakeCamera)
    opened = opening.open_configured(registry.VIDEO_SOURCES,
                                     config_with(video={**VIDEO, "source": "fake"}))
    assert made == [VIDEO] and opened.fallback is None
    opened.track.stop()


def test_a_configured_v4l2_camera_is_opened_at_its_device():
    config = config_with(video={"source": "v4l2", "device": "/dev/kioskd-no-such-camera"})
    with pytest.raises(CameraUnavailable, match="/dev/kioskd-no-such-camera does not exist"):
        opening.open_configured(registry.VIDEO_SOURCES, config, budget_s=0)


def test_the_configured_speaker_is_made_from_the_config():
    assert isinstance(opening.configured_speaker(Config()), NullAudioSink)
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")
    from kioskd.media.alsa import AlsaSpeaker

    speaker = opening.configured_speaker(config_with(audio={
        "sink": "alsa", "playback_device": "dmix", "playout_buffer_ms": 80}))
    assert isinstance(speaker, AlsaSpeaker)  # made, not started: no device opened yet
    assert (speaker.device, speaker.buffer_ms, speaker.max_buffer_ms) == ("dmix", 80, 200)
