"""The picamera2 back end, on the fake picamera2 (tests/support/fake_picamera2)."""

from __future__ import annotations

import asyncio
import fractions
import sys
import time
from pathlib import Path

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from kioskd.media.h264 import (
    PreEncodedH264Track,
    attach_sender,
    h264_preferences,
    nal_type,
    nal_units,
)
from kioskd.media import opening
from kioskd.media import picamera2 as picamera2_source
from kioskd.media.measure import MeasuringSink
from kioskd.media.picamera2 import (
    MIN_BITRATE,
    Picamera2Camera,
    Picamera2H264Track,
    Picamera2YuvTrack,
    default_bitrate,
)
from kioskd.media.stamp import read_stamp_from_frame
from kioskd.media.capture import CameraUnavailable

from tests.conftest import _forget_picamera2
from tests.support.waiting import wait_until


@pytest.fixture
def fake(fake_picamera2):
    return fake_picamera2


# -- opening --------------------------------------------------------------------------------


def test_without_picamera2_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    _forget_picamera2()
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    with pytest.raises(CameraUnavailable, match="python3-picamera2"):
        Picamera2Camera(640, 480, 30)


def test_no_camera(fake):
    fake.CAMERAS = 0
    with pytest.raises(CameraUnavailable, match="finds no camera 0") as error:
        Picamera2Camera(640, 480, 30, encode="software")
    assert error.value.reason == "missing"


def test_busy_camera(fake):
    fake.BUSY = True
    with pytest.raises(CameraUnavailable, match="Device or resource busy") as error:
        Picamera2Camera(640, 480, 30)
    assert error.value.reason == "busy"
    assert not fake.open_cameras


def test_a_busy_camera_freed_while_retrying_is_opened(fake):
    fake.BUSY = True

    def another_process_lets_go(seconds: float) -> None:  # opening's sleep between retries
        fake.BUSY = False

    opened = opening.open_device(Picamera2Camera, [dict(width=320, height=240, fps=30)],
                                 "video.source 'picamera2'", sleep=another_process_lets_go)
    assert fake.busy_refusals == 1 and opened.fallback is None
    assert fake.open_cameras == {0}
    opened.track.stop()


def test_a_refused_mode_is_unsupported_and_lets_go_of_the_camera(fake):
    fake.MAX_SIZE = (640, 480)
    with pytest.raises(CameraUnavailable, match="refused YUV420 1280x720@30: Configuration "
                                                "failed") as error:
        Picamera2Camera(1280, 720, 30, encode="software")
    assert error.value.reason == "unsupported" and len(str(error.value)) < 200
    assert not fake.open_cameras


async def test_a_refused_mode_falls_back_to_the_basic_settings(fake):
    fake.MAX_SIZE = (640, 480)
    mode = dict(width=1280, height=720, fps=30, encode="hardware", bitrate=2_500_000)
    opened = opening.open_device(Picamera2Camera, [mode, *Picamera2Camera.fallback_modes(mode)],
                                 "video.source 'picamera2'")
    assert opened.fallback == "refused 1280x720@30; using the basic settings 640x480@24"
    config = fake.instances[-1].camera_configuration()
    assert config["main"]["size"] == (640, 480)
    assert config["controls"]["FrameDurationLimits"] == (41667, 41667)
    await opened.track.recv()
    assert fake.encoders[-1].bitrate == default_bitrate(640, 480, 24)
    opened.track.stop()


@pytest.mark.parametrize("encode", ["software", "hardware"])
async def test_an_unplugged_camera_ends_its_track_with_an_error(fake, monkeypatch, encode):
    monkeypatch.setattr(picamera2_source, "CAMERA_STALL_S", 0.5)
    monkeypatch.setattr(picamera2_source, "CAPTURE_WAIT_S", 0.1)
    track = Picamera2Camera(320, 240, 30, encode=encode)
    for _ in range(3):
        await track.recv()
    fake.unplug(0)
    started = time.monotonic()
    with pytest.raises(MediaStreamError):
        for _ in range(100):  # what was captured before, then the end
            await asyncio.wait_for(track.recv(), 5)
    assert 0.4 < time.monotonic() - started < 3
    assert track.error == ("camera 0 sent no frames for 0.5 s: unplugged, or its ribbon cable "
                           "is loose")
    assert track.stats()["error"] == track.error
    track.stop()
    await wait_until(lambda: not fake.open_cameras)
    with pytest.raises(CameraUnavailable) as error:  # and it stays gone
        Picamera2Camera(320, 240, 30, encode=encode)
    assert error.value.reason == "missing"


def test_unknown_encode_mode(fake):
    with pytest.raises(ValueError, match="hardware"):
        Picamera2Camera(640, 480, 30, encode="gpu")


def test_the_camera_is_configured_for_yuv420_at_the_frame_rate(fake):
    track = Picamera2Camera(640, 480, 24, encode="hardware", keyframe_interval=12)
    camera = fake.instances[-1]
    config = camera.camera_configuration()
    assert config["main"]["format"] == "YUV420" and config["main"]["size"] == (640, 480)
    assert config["controls"]["FrameDurationLimits"] == (41667, 41667)
    assert isinstance(track, Picamera2H264Track) and isinstance(track, PreEncodedH264Track)
    encoder = fake.encoders[-1]
    assert (encoder.bitrate, encoder.iperiod, encoder.repeat, encoder.profile) == (
        default_bitrate(640, 480, 24), 12, True, "baseline")
    assert not camera.started  # started by the first recv()
    track.stop()


# -- software: YUV420 frames for aiortc's encoders --------------------------------------


async def test_software_mode_gives_yuv420_frames_from_the_camera_buffer(fake):
    # 352 wide: the camera's rows are 384 bytes, so the stride is not the width.
    track = Picamera2Camera(352, 288, 30, encode="software")
    assert isinstance(track, Picamera2YuvTrack)
    frames = [await track.recv()]
    started = time.monotonic()
    frames += [await track.recv() for _ in range(15)]
    elapsed = time.monotonic() - started
    track.stop()

    await wait_until(lambda: not fake.open_cameras)  # closed, on the capture thread
    assert all(f.format.name == "yuv420p" and (f.width, f.height) == (352, 288) for f in frames)
    assert frames[0].planes[0].line_size == 384
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    pts = [f.pts for f in frames]
    assert pts[0] == 0 and all(2500 < b - a < 3500 for a, b in zip(pts, pts[1:]))
    counters = [read_stamp_from_frame(f)[0] for f in frames]
    assert counters == list(range(counters[0], counters[0] + 16))  # every frame, in order
    assert 0.35 < elapsed < 1.0  # 15 frame periods of 1/30 s


# -- hardware: pre-encoded H.264 --------------------------------------------------------


async def test_hardware_mode_sends_the_encoder_output_as_packets(fake):
    track = Picamera2Camera(320, 240, 30, encode="hardware", keyframe_interval=300)
    decoder = av.CodecContext.create("h264", "r")
    packets, stamps = [], []
    for _ in range(20):
        packet = await track.recv()
        packets.append(packet)
        stamps += [read_stamp_from_frame(f) for f in decoder.decode(packet)]
    track.stop()

    first = [nal_type(u) for u in nal_units(bytes(packets[0]))]
    assert packets[0].is_keyframe and first[:2] == [7, 8] and 5 in first
    assert not any(p.is_keyframe for p in packets[1:])  # a long GOP: one keyframe
    assert all(p.time_base == fractions.Fraction(1, 90000) for p in packets)
    assert packets[0].pts == 0 and all(2500 < b.pts - a.pts < 3500
                                       for a, b in zip(packets, packets[1:]))
    assert [s[0] for s in stamps] == list(range(20))  # the camera's frames, decodable


async def test_a_keyframe_request_reaches_force_key_frame(fake):
    track = Picamera2Camera(320, 240, 30, encode="hardware", keyframe_interval=300)
    for _ in range(5):
        await track.recv()
    encoder = fake.encoders[-1]
    track.request_keyframe()  # what attach_sender does on PLI/FIR
    assert encoder._key_frames_requested == 1
    later = [await track.recv() for _ in range(5)]
    track.stop()
    assert any(p.is_keyframe for p in later)
    assert [nal_type(u) for u in nal_units(bytes(next(p for p in later if p.is_keyframe)))][:2] \
        == [7, 8]
    assert track.stats()["keyframes_forced"] == 1


async def test_the_bitrate_follows_the_far_ends_estimate_within_its_range(fake):
    track = Picamera2Camera(320, 240, 30, encode="hardware", bitrate=1_000_000)
    await track.recv()
    encoder = fake.encoders[-1]
    assert encoder.bitrate == 1_000_000

    track.bitrate_estimate(600_000)
    assert encoder.bitrate == 600_000
    track.bitrate_estimate(630_000)  # within 10%: not worth an encoder change
    assert encoder.bitrate == 600_000
    track.bitrate_estimate(50_000_000)  # clamped to the configured bitrate
    assert encoder.bitrate == 1_000_000
    track.bitrate_estimate(10_000)  # clamped to the floor
    assert encoder.bitrate == MIN_BITRATE
    for _ in range(3):
        await track.recv()
    track.stop()
    assert encoder.bitrates_applied[0] == 1_000_000 and MIN_BITRATE in encoder.bitrates_applied
    assert track.stats()["encoder_bitrate"] == MIN_BITRATE


async def test_the_next_call_gets_the_camera_while_the_last_one_closes(fake):
    for encode in ("hardware", "software", "hardware"):
        track = Picamera2Camera(320, 240, 30, encode=encode)
        await track.recv()
        track.stop()  # closes on a thread; the next open waits for it
    await wait_until(lambda: not fake.open_cameras)


async def test_an_unused_track_releases_the_camera(fake):
    Picamera2Camera(320, 240, 30, encode="software").stop()
    track = Picamera2Camera(320, 240, 30, encode="hardware")
    track.stop()
    await wait_until(lambda: not fake.open_cameras)


# -- through a real peer connection ---------------------------------------------------------


@pytest.mark.netns
async def test_camera_to_screen_through_a_peer_connection(fake):
    track = Picamera2Camera(640, 480, 30, encode="hardware", keyframe_interval=600)
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sink = MeasuringSink()
    receiver_pc.on("track", sink.add_track)
    transceiver = sender_pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(h264_preferences())
    attach_sender(transceiver.sender, track)
    try:
        await sink.start()
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        await sink.wait_for_frames(video=30, timeout=15)
        stats = sink.stats()
        assert stats["video_size"] == [640, 480] and stats["stamps_decoded"] >= 25
        assert stats["latency_ms_p50"] < 500

        encoder = fake.encoders[-1]
        keyframes = encoder.keyframes_output
        receiver = receiver_pc.getTransceivers()[0].receiver
        await receiver._send_rtcp_pli(transceiver.sender._ssrc)
        await wait_until(lambda: encoder.keyframes_output > keyframes)
        assert encoder._key_frames_requested >= 1
        frames = sink.video_frames
        await sink.wait_for_frames(video=frames + 10, timeout=5)
    finally:
        await sink.stop()
        await asyncio.gather(sender_pc.close(), receiver_pc.close())
    await wait_until(lambda: not fake.open_cameras)
