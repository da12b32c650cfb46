"""Opening a device with the fallbacks: busy -> retry with backoff, refused mode -> basic."""

from __future__ import annotations

import logging

import pytest

from kioskd.media import opening
from kioskd.media.capture import CameraUnavailable, DeviceUnavailable
from kioskd.media.opening import BASIC_VIDEO, Opened, basic_modes, describe, open_device


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
    opened, _ = run(device, modes=[MODE, *basic_modes(MODE)])
    assert device.calls == [MODE, BASIC_VIDEO]
    assert opened.fallback == "refused 1280x720@30; using the basic settings 640x480@24"
    assert "refused 1280x720@30 (camera 0 is unsupported); trying the basic settings " \
        "640x480@24" in caplog.records[0].getMessage()


def test_a_basic_mode_that_is_busy_is_retried_too():
    device = Device("unsupported", "busy")
    opened, clock = run(device, modes=[MODE, *basic_modes(MODE)])
    assert len(device.calls) == 3 and opened.fallback and len(clock.sleeps) == 1


def test_when_every_mode_is_refused_the_last_error_is_raised():
    device = Device("unsupported", "unsupported", "unsupported")
    v4l2 = {**MODE, "device": "/dev/video0", "input_format": "mjpeg"}
    with pytest.raises(DeviceUnavailable) as error:
        run(device, modes=[v4l2, *basic_modes(v4l2)])
    assert error.value.reason == "unsupported"
    assert [c["input_format"] for c in device.calls] == ["mjpeg", "mjpeg", "yuyv422"]


def test_basic_modes():
    picamera2 = {"width": 1280, "height": 720, "fps": 30, "encode": "hardware",
                 "bitrate": 2_500_000}
    assert basic_modes(picamera2) == [{"width": 640, "height": 480, "fps": 24,
                                       "encode": "hardware", "bitrate": None}]
    v4l2 = {"width": 1280, "height": 720, "fps": 30, "device": "/dev/video0",
            "input_format": "mjpeg"}
    assert [describe(m) for m in basic_modes(v4l2)] == ["mjpeg 640x480@24", "yuyv422 640x480@24"]
    # Already basic: only the other input format is left to try.
    assert [describe(m) for m in basic_modes({**v4l2, **BASIC_VIDEO})] == ["yuyv422 640x480@24"]
    assert basic_modes(BASIC_VIDEO) == []
