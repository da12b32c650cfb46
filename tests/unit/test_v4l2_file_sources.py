"""The V4L2 camera and the file camera (both threaded PyAV sources)."""

from __future__ import annotations

import asyncio
import errno
import fractions
import glob
import threading
import time
from pathlib import Path

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from kioskd.media import v4l2
from kioskd.media.capture import CameraUnavailable
from kioskd.media.file import FileCamera
from kioskd.media.stamp import read_stamp_from_frame
from kioskd.media.synthetic import TestPattern
from kioskd.media.v4l2 import V4l2Camera


def make_video(path: Path, frames: int = 15, fps: int = 15, size=(320, 240)) -> Path:
    """A small H.264 .mp4 of the stamped test pattern: frame n carries counter n."""
    pattern = TestPattern(*size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for n in range(frames):
            frame = pattern.render(n, n, 0)
            frame.pts = n
            frame.time_base = fractions.Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# -- V4L2 -----------------------------------------------------------------------------------


def test_a_missing_device_is_a_clear_error():
    device = "/dev/video0" if not glob.glob("/dev/video*") else "/dev/video-kioskd-missing"
    with pytest.raises(CameraUnavailable, match="does not exist: no camera is plugged in") \
            as error:
        V4l2Camera(device, 640, 480, 30)
    assert error.value.reason == "missing"


def test_a_device_that_is_not_a_camera_is_a_clear_error():
    with pytest.raises(CameraUnavailable, match="/dev/null is not a V4L2 capture device") \
            as error:
        V4l2Camera("/dev/null", 640, 480, 30)
    assert error.value.reason == "missing"


@pytest.mark.parametrize("error, reason, words", [
    (OSError(errno.EBUSY, "Device or resource busy"), "busy", "is busy: another program"),
    (av.error.OSError(errno.EBUSY, "Device or resource busy"), "busy", "is busy"),
    (OSError(errno.ENODEV, "No such device"), "missing", "does not exist"),
    (PermissionError(errno.EACCES, "Permission denied"), "denied", "video group"),
    # PyAV raises EINVAL as av.error.ArgumentError, a ValueError: the driver refused the mode.
    (av.error.ArgumentError(errno.EINVAL, "Invalid argument"), "unsupported",
     "refused mjpeg 1280x720@30"),
    (OSError(errno.EIO, "Input/output error"), "failed", "failed with mjpeg 1280x720@30"),
])
def test_open_errors_say_why_with_a_reason(error, reason, words):
    unavailable = v4l2._open_error("/dev/video0", error, "mjpeg 1280x720@30")
    assert unavailable.reason == reason and words in str(unavailable)


def test_an_unknown_input_format_is_refused():
    with pytest.raises(ValueError, match="mjpeg"):
        V4l2Camera("/dev/video0", 640, 480, 30, input_format="h265")


def loopback_device() -> str | None:
    """A v4l2loopback device, if the module is loaded."""
    for name_file in sorted(glob.glob("/sys/class/video4linux/video*/name")):
        if "loopback" in Path(name_file).read_text().lower():
            return "/dev/" + Path(name_file).parent.name
    return None


async def test_capture_from_a_v4l2loopback_device():
    device = loopback_device()
    if device is None:
        pytest.skip("no v4l2loopback device (modprobe v4l2loopback) to capture from")
    stop = threading.Event()

    def feed() -> None:  # what a camera would send: yuyv422 at 15 fps
        pattern = TestPattern(320, 240)
        with av.open(device, "w", format="v4l2") as out:
            stream = out.add_stream("rawvideo", rate=15)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuyv422"
            n = 0
            while not stop.wait(1 / 15):
                frame = pattern.render(n, n, 0).reformat(format="yuyv422")
                frame.pts = n
                out.mux(stream.encode(frame))
                n += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    await asyncio.sleep(0.5)
    try:
        camera = V4l2Camera(device, 320, 240, 15, input_format="yuyv422")
        frames = [await camera.recv() for _ in range(10)]
        camera.stop()
    finally:
        stop.set()
        feeder.join()
    assert all(f.format.name == "yuv420p" and (f.width, f.height) == (320, 240) for f in frames)
    counters = [read_stamp_from_frame(f)[0] for f in frames]
    assert counters == sorted(counters)


# -- file -----------------------------------------------------------------------------------


async def test_a_file_plays_in_real_time_and_loops(tmp_path: Path):
    camera = FileCamera(make_video(tmp_path / "clip.mp4", frames=15, fps=15))
    frames = [await camera.recv()]
    started = time.monotonic()
    frames += [await camera.recv() for _ in range(22)]
    elapsed = time.monotonic() - started
    camera.stop()

    assert 1.2 < elapsed < 2.0  # 22 frame periods of 1/15 s
    counters = [read_stamp_from_frame(f)[0] for f in frames]
    assert counters == list(range(15)) + list(range(8))  # round again without a gap
    pts = [f.pts for f in frames]
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    assert all(5800 < b - a < 6200 for a, b in zip(pts, pts[1:]))  # 1/15 s, also at the seam
    assert camera.loops >= 1 and camera.stats()["error"] is None


async def test_a_file_without_loop_ends(tmp_path: Path):
    camera = FileCamera(make_video(tmp_path / "clip.mp4", frames=5, fps=30), loop=False)
    frames = [await camera.recv() for _ in range(5)]
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(camera.recv(), 2)
    camera.stop()
    assert [read_stamp_from_frame(f)[0] for f in frames] == [0, 1, 2, 3, 4]


async def test_a_file_is_scaled_and_its_rate_capped(tmp_path: Path):
    path = make_video(tmp_path / "clip.mp4", frames=30, fps=30, size=(640, 480))
    camera = FileCamera(path, width=320, height=240, fps=15)
    frames = [await camera.recv() for _ in range(8)]
    camera.stop()
    assert all((f.width, f.height) == (320, 240) and f.format.name == "yuv420p" for f in frames)
    counters = [read_stamp_from_frame(f)[0] for f in frames]
    assert counters == list(range(0, 16, 2))  # every other frame of the 30 fps file


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CameraUnavailable, match="does not exist") as missing:
        FileCamera(tmp_path / "nothing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(CameraUnavailable, match="can't be read") as unreadable:
        FileCamera(tmp_path / "junk.mp4")
    assert (missing.value.reason, unreadable.value.reason) == ("missing", "unsupported")


async def test_stop_ends_the_thread_and_recv(tmp_path: Path):
    camera = FileCamera(make_video(tmp_path / "clip.mp4"))
    await camera.recv()
    thread = camera._thread
    camera.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(MediaStreamError):
        await camera.recv()
