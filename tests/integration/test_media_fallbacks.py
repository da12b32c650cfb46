"""The media fallbacks, through the real relay and a real aiortc caller: a busy camera is
retried, a refused mode falls back to basic settings, and a camera or microphone that goes
away mid-call leaves the call connected with what remains."""

from __future__ import annotations

import threading

import pytest
from aiortc.mediastreams import MediaStreamError

from kioskd.call.states import State
from kioskd.ctl import print_status
from kioskd.media import opening, registry
from kioskd.media import picamera2 as picamera2_source
from kioskd.media.capture import DeviceUnavailable
from kioskd.media.synthetic import SyntheticCamera, SyntheticTone
from kioskd.ui.status_view import admin_error, media_warnings
from tests.integration.conftest import connected_call, running_kiosk
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]

PICAMERA2 = ("video.source=picamera2", "video.width=640", "video.height=480", "video.fps=24")


def admin(kiosk) -> str | None:
    """What the error screen tells an admin to fix."""
    return admin_error(kiosk.signaling.status, kiosk.problems.snapshot())


def warnings(kiosk) -> tuple[str, ...]:
    """What the in-call screen shows beside "Mic off" (the tests run without a screen)."""
    return media_warnings(kiosk.runner.machine.call.call_type, kiosk.problems.snapshot())


async def test_camera_and_microphone_open_together_off_the_event_loop(relay, alice,
                                                                      monkeypatch):
    # Each device's opening blocks until the other's has begun: opened one after the other,
    # or on the event loop, the first would wait for the second in vain (BrokenBarrierError).
    both_opening = threading.Barrier(2, timeout=5)

    class SlowCamera(SyntheticCamera):
        def __init__(self, **options) -> None:
            both_opening.wait()
            super().__init__(**options)

    class SlowMicrophone(SyntheticTone):
        def __init__(self, **options) -> None:
            both_opening.wait()
            super().__init__(**options)

    monkeypatch.setitem(registry.VIDEO_SOURCES, "slow", SlowCamera)
    monkeypatch.setitem(registry.AUDIO_SOURCES, "slow", SlowMicrophone)
    async with running_kiosk(relay.url, "video.source=slow", "audio.source=slow") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(audio=10, video=5, timeout=15)
        assert kiosk.status()["media_errors"] is None


async def test_a_call_that_ends_while_its_camera_opens_lets_go_of_it(relay, alice,
                                                                     monkeypatch):
    opening_started, go_on = threading.Event(), threading.Event()
    made: list[SyntheticCamera] = []

    class SlowCamera(SyntheticCamera):
        def __init__(self, **options) -> None:
            opening_started.set()
            go_on.wait(5)
            super().__init__(**options)
            made.append(self)

    monkeypatch.setitem(registry.VIDEO_SOURCES, "slow", SlowCamera)
    async with running_kiosk(relay.url, "video.source=slow") as kiosk:
        await alice.call("kiosk", "video")
        await wait_until(opening_started.is_set)
        await alice.hangup()
        await kiosk.wait_for_state(State.IDLE)
        go_on.set()
        await wait_until(lambda: bool(made) and made[0].readyState == "ended")
        assert kiosk.local_media.tracks == {}


async def test_a_camera_busy_at_call_start_is_retried_until_it_is_free(relay, alice,
                                                                      fake_picamera2):
    fake_picamera2.BUSY = True  # another program has the camera
    async with running_kiosk(relay.url, *PICAMERA2) as kiosk:
        await alice.call("kiosk", "video")
        await wait_until(lambda: fake_picamera2.busy_refusals >= 1)
        fake_picamera2.BUSY = False  # ... and lets go of it while the kiosk retries
        await alice.receive_answer()
        await kiosk.wait_for_state(State.CONNECTED)
        await alice.sink.wait_for_frames(video=10, timeout=15)
        assert kiosk.status()["media_errors"] is None and warnings(kiosk) == ()


async def test_a_camera_busy_throughout_means_a_call_without_the_kiosks_picture(
        relay, alice, fake_picamera2, monkeypatch):
    monkeypatch.setattr(opening, "BUSY_RETRY_S", 1.0)  # the test need not wait the full 2.5 s
    fake_picamera2.BUSY = True
    async with running_kiosk(relay.url, *PICAMERA2) as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(audio=25, timeout=15)  # the kiosk is still heard
        assert alice.sink.video_frames == 0 and fake_picamera2.busy_refusals >= 2
        error = kiosk.status()["media_errors"]["video.source"]
        assert error.startswith("camera 0 is busy (Failed to acquire camera: Device or "
                                "resource busy)") and "(still busy after" in error
        assert warnings(kiosk) == ("Camera busy",)
        assert admin(kiosk).startswith("Camera busy: camera 0 is busy")


async def test_a_refused_mode_means_a_call_with_the_basic_settings(relay, alice,
                                                                   fake_picamera2, capsys):
    fake_picamera2.MAX_SIZE = (640, 480)
    async with running_kiosk(relay.url, "video.source=picamera2", "video.width=1280",
                             "video.height=720", "video.fps=30") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(video=10, timeout=15)
        assert alice.sink.stats()["video_size"] == [640, 480]
        status = kiosk.status()
        assert status["media_errors"] is None
        assert status["media_notices"] == {
            "video.source": "refused 1280x720@30; using the basic settings 640x480@24"}
        assert warnings(kiosk) == ("Basic camera settings",)
        print_status(status)  # kioskctl status
        printed = capsys.readouterr().out
        assert "  video.source: refused 1280x720@30; using the basic settings 640x480@24\n" \
            in printed and "  received video: " in printed


async def test_a_camera_that_vanishes_mid_call_leaves_the_call_connected(
        relay, alice, fake_picamera2, monkeypatch):
    monkeypatch.setattr(picamera2_source, "CAMERA_STALL_S", 0.5)
    async with running_kiosk(relay.url, *PICAMERA2, "video.encoder=hardware") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(video=10, timeout=15)
        fake_picamera2.unplug(0)
        await wait_until(lambda: "video.source" in (kiosk.status()["media_errors"] or {}),
                         timeout=10)
        assert kiosk.status()["media_errors"]["video.source"] == (
            "camera lost mid-call: camera 0 sent no frames for 0.5 s: unplugged, or its ribbon "
            "cable is loose")
        heard = alice.sink.audio_frames
        await alice.sink.wait_for_frames(audio=heard + 25, timeout=10)  # still heard
        seen = kiosk.runner.media.sink.video_frames
        await kiosk.runner.media.sink.wait_for_frames(video=seen + 5, timeout=10)  # still sees
        assert kiosk.runner.machine.state is State.CONNECTED
        assert warnings(kiosk) == ("Camera lost",)
        assert admin(kiosk) == (
            "Camera lost mid-call: camera 0 sent no frames for 0.5 s: unplugged, or its ribbon "
            "cable is loose. Check video.source and the cable.")


class PulledMicrophone(SyntheticTone):
    """A microphone that can be pulled out (its track fails, as alsa's does when unplugged, and
    it cannot be opened) and plugged back in."""

    made: list[PulledMicrophone] = []
    plugged_in = True

    def __init__(self, **options) -> None:
        if not PulledMicrophone.plugged_in:
            raise DeviceUnavailable("cannot open the microphone: No such device", "missing")
        super().__init__(**options)
        self.error: str | None = None
        PulledMicrophone.made.append(self)

    @classmethod
    def pull(cls) -> None:
        cls.plugged_in = False
        cls.made[-1].error = "No such device"

    async def recv(self):
        if self.error is not None:
            raise MediaStreamError
        return await super().recv()


async def test_a_microphone_that_vanishes_mid_call_means_video_with_a_warning(
        relay, alice, monkeypatch):
    monkeypatch.setitem(registry.AUDIO_SOURCES, "pulled", PulledMicrophone)
    monkeypatch.setattr(PulledMicrophone, "plugged_in", True)
    async with running_kiosk(relay.url, "audio.source=pulled") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(audio=10, video=5, timeout=15)
        PulledMicrophone.pull()
        await wait_until(lambda: "audio.source" in (kiosk.status()["media_errors"] or {}))
        assert kiosk.status()["media_errors"]["audio.source"] == (
            "microphone lost mid-call: No such device")
        seen = alice.sink.video_frames
        await alice.sink.wait_for_frames(video=seen + 10, timeout=10)  # the picture goes on
        assert kiosk.runner.machine.state is State.CONNECTED
        assert warnings(kiosk) == ("Microphone lost",)

        # Plugged back in: the kiosk finds it and is heard again, in the same call.
        made = len(PulledMicrophone.made)
        PulledMicrophone.plugged_in = True
        await wait_until(lambda: kiosk.status()["media_errors"] is None, timeout=15)
        assert len(PulledMicrophone.made) == made + 1 and warnings(kiosk) == ()
        heard = alice.sink.audio_frames
        await alice.sink.wait_for_frames(audio=heard + 25, timeout=10)


@pytest.mark.parametrize("encoder", ["software", "hardware"])
async def test_a_camera_unplugged_and_plugged_back_in_comes_back_in_the_same_call(
        relay, alice, fake_picamera2, monkeypatch, encoder):
    monkeypatch.setattr(picamera2_source, "CAMERA_STALL_S", 0.5)
    async with running_kiosk(relay.url, *PICAMERA2, f"video.encoder={encoder}") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(video=10, timeout=15)
        fake_picamera2.unplug(0)
        await wait_until(lambda: "video.source" in (kiosk.status()["media_errors"] or {}),
                         timeout=10)
        assert warnings(kiosk) == ("Camera lost",)
        fake_picamera2.replug(0)
        await wait_until(lambda: kiosk.status()["media_errors"] is None, timeout=15)
        seen = alice.sink.video_frames
        await alice.sink.wait_for_frames(video=seen + 10, timeout=10)  # the picture is back
        assert kiosk.runner.machine.state is State.CONNECTED and warnings(kiosk) == ()
        assert len(fake_picamera2.instances) == 2  # opened again, not a new call


async def test_a_missing_microphone_means_video_with_a_warning(relay, alice):
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")
    async with running_kiosk(relay.url, "audio.source=alsa",
                             "audio.capture_device=kiosk_no_such_microphone") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(video=10, timeout=15)
        assert alice.sink.audio_frames == 0
        assert 'device "kiosk_no_such_microphone"' in kiosk.status()["media_errors"]["audio.source"]
        assert warnings(kiosk) == ("No microphone",)
        assert admin(kiosk).startswith('Microphone missing: cannot open ALSA capture')
