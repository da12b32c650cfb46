"""Calls with the kiosk's real camera back ends: picamera2 (on the fake that follows its API,
with a pre-encoded stream shaped like the Pi's encoder) and a looped video file."""

from __future__ import annotations

import asyncio

import pytest

from kioskd.call.states import State
from tests.integration.conftest import connected_call, running_kiosk

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


async def test_hardware_h264_from_picamera2_reaches_the_caller(relay, alice, fake_picamera2):
    async with running_kiosk(relay.url, "video.source=picamera2", "video.encoder=hardware",
                             "video.width=640", "video.height=480", "video.fps=24",
                             'rtc.video_codecs=["VP8", "H264"]') as kiosk:
        await connected_call(kiosk, alice)
        # H.264 even though the config prefers VP8: the camera's stream is already H.264.
        assert "H264" in _sent_video_codec(alice)
        await alice.sink.wait_for_frames(video=24, timeout=15)
        assert alice.sink.stats()["stamps_decoded"] > 0


async def test_software_yuv_from_picamera2(relay, alice, fake_picamera2):
    async with running_kiosk(relay.url, "video.source=picamera2", "video.encoder=software",
                             "video.width=640", "video.height=480") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(video=10, timeout=15)


async def test_missing_camera_means_a_call_without_the_kiosks_picture(relay, alice,
                                                                      fake_picamera2):
    fake_picamera2.CAMERAS = 0
    async with running_kiosk(relay.url, "video.source=picamera2") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(audio=25, timeout=15)  # the kiosk is still heard
        await kiosk.runner.media.sink.wait_for_frames(video=5, timeout=15)  # and still sees the caller
        assert alice.sink.video_frames == 0
        assert "video.source" in kiosk.status()["media_errors"]
        assert kiosk.runner.machine.state is State.CONNECTED


async def test_video_file_source(relay, alice, tmp_path):
    path = tmp_path / "loop.mp4"
    await asyncio.to_thread(_make_video, path)
    async with running_kiosk(relay.url, "video.source=file", f"video.file={path}") as kiosk:
        await connected_call(kiosk, alice)
        await alice.sink.wait_for_frames(video=20, timeout=15)  # more than the file holds: loops
        stats = alice.sink.stats()
        assert stats["video_size"] == [320, 240]  # scaled to the configured size
        assert stats["stamps_decoded"] == 0  # the file's pictures, not the synthetic pattern


def _sent_video_codec(caller) -> str:
    sdp = caller.pc.remoteDescription.sdp
    video = sdp[sdp.index("m=video"):]
    payload = video.split("\r\n")[0].split()[3]
    return next(line for line in video.split("\r\n") if line.startswith(f"a=rtpmap:{payload} "))


def _make_video(path) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(15):  # one second
            frame = av.VideoFrame.from_ndarray(
                np.full((120, 160, 3), i * 16, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
