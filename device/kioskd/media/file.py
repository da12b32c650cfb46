"""A video file as the camera: decoded with PyAV on its own thread, played in real time.

For demonstrations and tests with real pictures. Frames are paced by the file's own
timestamps (frame n is due at start + its time in the file), looping without a gap when
`loop` is set; a thread that falls behind skips frames rather than bursting. `width` and
`height` scale the picture, `fps` caps the frame rate (frames closer together are skipped).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import av

from .backend import ConfiguredBackend
from .capture import CameraUnavailable, ThreadedVideoTrack

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)


class FileCamera(ThreadedVideoTrack, ConfiguredBackend):
    """Plays the first video stream of `path` (any format FFmpeg reads) as a live camera."""

    def __init__(self, path: str | os.PathLike[str], loop: bool = True, width: int | None = None,
                 height: int | None = None, fps: float | None = None) -> None:
        super().__init__(f"file {os.fspath(path)}")
        self.path, self.loop = os.fspath(path), loop
        self.width, self.height, self.fps = width, height, fps
        if (width is None) != (height is None):
            raise ValueError("give both width and height, or neither")
        self._container = self._open()
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        self._frame_period = 1 / float(rate)
        self.loops = 0

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        video = config.video
        return {"path": video.file, "width": video.width, "height": video.height,
                "fps": video.fps}

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(self.path)
        except FileNotFoundError:
            raise CameraUnavailable(f"video file {self.path} does not exist", "missing") from None
        except PermissionError as exc:
            raise CameraUnavailable(f"video file {self.path} can't be read: {exc}",
                                    "denied") from None
        except (OSError, av.FFmpegError) as exc:
            raise CameraUnavailable(f"video file {self.path} can't be read: {exc}",
                                    "unsupported") from None
        if not container.streams.video:
            container.close()
            raise CameraUnavailable(f"video file {self.path} has no video stream", "unsupported")
        container.streams.video[0].thread_type = "AUTO"
        return container

    def _one_pass(self) -> Iterator[tuple[av.VideoFrame, float]]:
        """Frames of one pass through the file, with their time in the file (seconds)."""
        stream = self._container.streams.video[0]
        index = 0
        for frame in self._container.decode(stream):
            at = frame.time if frame.time is not None else index * self._frame_period
            index += 1
            yield frame, at

    def _capture(self) -> None:
        start = time.monotonic()
        offset = 0.0  # file time at the start of this pass, on the playing clock
        first: float | None = None
        last_delivered = -float("inf")
        min_gap = 1 / self.fps if self.fps else 0.0
        while not self._stopping.is_set():
            end = offset
            decoded = 0
            for frame, at in self._one_pass():
                decoded += 1
                if first is None:
                    first = at
                due = offset + (at - first)
                end = due + self._frame_period
                if due - last_delivered < min_gap * 0.999:
                    continue  # over the fps cap
                delay = start + due - time.monotonic()
                if delay < -self._frame_period:
                    continue  # more than a frame late: skip, don't burst
                if delay > 0 and self._stopping.wait(delay):
                    return
                if self._stopping.is_set():
                    return
                if self.width is not None:
                    frame = frame.reformat(width=self.width, height=self.height,
                                           format="yuv420p")
                self._deliver(frame, start + due)
                last_delivered = due
            if not self.loop:
                return
            if not decoded:
                raise CameraUnavailable(f"video file {self.path} has no frames to play",
                                        "unsupported")
            self.loops += 1
            offset, first = end, None
            self._container.close()
            self._container = self._open()

    def _release(self) -> None:
        self._container.close()
