"""A V4L2 camera (a USB webcam, /dev/videoN) read with PyAV on a capture thread.

`V4l2Camera` opens the device when it is made, so a missing, busy or unsuitable camera is
reported when the call starts (`CameraUnavailable`, one readable sentence and a reason), and
starts capturing at the first `recv()`.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any

import av

from .backend import ConfiguredBackend
from .capture import CameraUnavailable, ThreadedVideoTrack
from .opening import BASIC_VIDEO

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

INPUT_FORMATS = ("mjpeg", "yuyv422")
OTHER_INPUT_FORMAT = {"mjpeg": "yuyv422", "yuyv422": "mjpeg"}


def _open_error(device: str, exc: Exception, what: str) -> CameraUnavailable:
    """The sentence and reason for an error from opening (or reading) `device` in mode `what`.
    PyAV's errors carry the driver's errno (EINVAL, a refused mode, is not an OSError)."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return CameraUnavailable(f"{device} does not exist: no camera is plugged in there "
                                 "(ls /dev/video* lists the ones there are)", "missing")
    if code == errno.EBUSY:
        return CameraUnavailable(f"{device} is busy: another program (or another kioskd) "
                                 "is using the camera", "busy")
    if code in (errno.EACCES, errno.EPERM):
        return CameraUnavailable(f"{device}: permission denied; the kioskd user must be in "
                                 "the video group", "denied")
    if code == errno.ENOTTY:
        return CameraUnavailable(f"{device} is not a V4L2 capture device", "missing")
    if code in (errno.EINVAL, errno.ERANGE, None):
        return CameraUnavailable(f"{device} refused {what}: {exc}; v4l2-ctl -d {device} "
                                 "--list-formats-ext lists what it can do", "unsupported")
    return CameraUnavailable(f"{device} failed with {what}: {exc}", "failed")


class V4l2Camera(ThreadedVideoTrack, ConfiguredBackend):
    """A V4L2 camera at `width` x `height`, `fps`, read as `input_format` (what the camera
    sends over USB: "mjpeg", which most webcams need for 720p30, or raw "yuyv422").

    Raises CameraUnavailable when the device is missing, busy or refuses the mode.
    """

    def __init__(self, device: str = "/dev/video0", width: int = 640, height: int = 480,
                 fps: float = 30, input_format: str = "mjpeg") -> None:
        super().__init__(f"v4l2 {device}")
        if input_format not in INPUT_FORMATS:
            raise ValueError(f'input_format "{input_format}" is not one of {INPUT_FORMATS}')
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.input_format = input_format
        self._what = what = f"{input_format} {width}x{height}@{fps:g}"
        if not os.path.exists(device):
            raise _open_error(device, FileNotFoundError(errno.ENOENT, "missing", device), what)
        options = {"video_size": f"{width}x{height}", "framerate": f"{fps:g}",
                   "input_format": input_format}
        try:
            self._container = av.open(device, format="v4l2", options=options)
        except (OSError, av.FFmpegError) as exc:
            raise _open_error(device, exc, what) from None
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # MJPEG decoding on more than one core
        actual = (self._stream.codec_context.width, self._stream.codec_context.height)
        if actual != (width, height):
            log.warning("%s gives %dx%d, not the %dx%d asked for", device, *actual, width, height)
        log.info("%s open: %s", device, what)

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        video = config.video
        return {"device": video.device, "width": video.width, "height": video.height,
                "fps": video.fps, "input_format": video.input_format}

    @staticmethod
    def fallback_modes(settings: dict[str, Any]) -> list[dict[str, Any]]:
        """After `settings` were refused: the basic settings, then the basic settings in the
        other input format (a webcam may offer a size in only one of them)."""
        basic = {**settings, **BASIC_VIDEO}
        modes = [basic] if basic != settings else []
        return [*modes, {**basic, "input_format": OTHER_INPUT_FORMAT[settings["input_format"]]}]

    def _capture(self) -> None:
        try:
            for packet in self._container.demux(self._stream):
                if self._stopping.is_set():
                    return
                for frame in packet.decode():
                    # The driver's timestamp is the capture time (None: arrival time is used).
                    self._deliver(frame, frame.time)
        except (OSError, av.FFmpegError) as exc:  # unplugged mid-call: ENODEV
            raise _open_error(self.device, exc, self._what) from None
        raise CameraUnavailable(f"{self.device} stopped sending frames (unplugged?)", "missing")

    def _release(self) -> None:
        self._container.close()
