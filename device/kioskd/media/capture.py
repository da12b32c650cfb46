"""What every capture device here shares: errors with a reason, and the threaded video track.

`DeviceUnavailable` is a device (camera or microphone) that can't be used, as one readable
sentence plus a machine-readable `reason`, which the app acts on when a call starts:

    missing      no such device (unplugged, wrong name)
    busy         another program holds it: worth retrying for a moment
    unsupported  it refused the asked settings: worth retrying with basic ones
    denied       no permission (the kiosk user's groups)
    failed       anything else

`ThreadedVideoTrack` is what every blocking video source (V4L2, file, picamera2's YUV mode)
is made of: one owned thread runs the device and hands frames to `recv()` through a small
queue that drops the oldest (a `kioskd.handoff.Handoff`), so a late consumer gets the newest
picture, never a backlog, and the device never waits. Frames come out yuv420p (converted on
the capture thread, not the event loop) with pts in 90 kHz units from the capture time.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..handoff import Handoff, HandoffClosed

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
STOP_TIMEOUT_S = 2.0  # how long stop() waits for the capture thread to let go of the device

REASONS = ("missing", "busy", "unsupported", "denied", "failed")


class DeviceUnavailable(RuntimeError):
    """A device that can't be used: the message is one readable sentence, `reason` one of
    REASONS."""

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason if reason in REASONS else "failed"


class CameraUnavailable(DeviceUnavailable):
    """A camera that can't be used: missing, busy, refused the mode."""


class ThreadedVideoTrack(MediaStreamTrack):
    """A video track fed by one capture thread, started at the first `recv()`.

    Subclasses implement `_capture()` (runs on the thread: produce frames with `_deliver`
    until `_stopping` is set or the source ends) and `_release()` (close the device; runs on
    the thread after `_capture`, or in `stop()` if the thread never started). An exception
    in `_capture` ends the track: recv() raises MediaStreamError and `error` says why.
    """

    kind = "video"
    # stop() waits for the thread (so the next call can open the device at once); a subclass
    # that guards the device some other way can leave the thread to finish on its own.
    join_on_stop = True

    def __init__(self, name: str, queue_size: int = 2) -> None:
        super().__init__()
        self.name = name
        self.captured_frames = 0
        self.delivered_frames = 0
        self._frames: Handoff[av.VideoFrame] = Handoff(queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._release_lock = threading.Lock()
        self._released = False
        self._origin_s: float | None = None
        self._last_pts = -1

    @property
    def error(self) -> str | None:
        """Why the capture thread ended, if it failed."""
        return self._frames.error

    @property
    def dropped_frames(self) -> int:
        """Frames the consumer was too late for (the newest ones pushed them out)."""
        return self._frames.dropped

    # -- for subclasses -------------------------------------------------------------------

    def _capture(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Close the device. Called once."""

    def _deliver(self, frame: av.VideoFrame, captured_s: float | None = None) -> None:
        """Hand a frame to recv() (thread-safe). `captured_s`: capture time in seconds on any
        clock that is steady for this track (time.monotonic() if None)."""
        if captured_s is None:
            captured_s = time.monotonic()
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        if self._origin_s is None:
            self._origin_s = captured_s
        pts = round((captured_s - self._origin_s) * VIDEO_CLOCK_RATE)
        pts = max(pts, self._last_pts + 1)  # never backwards, whatever the device's clock did
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self.captured_frames += 1
        self._frames.put(frame)

    # -- the track ------------------------------------------------------------------------

    def _run(self) -> None:
        error = None
        try:
            self._capture()
        except Exception as exc:
            if not self._stopping.is_set():
                error = str(exc) if isinstance(exc, DeviceUnavailable) \
                    else f"{type(exc).__name__}: {exc}"
                log.error("video source %s failed: %s", self.name, error)
        finally:
            self._release_once()
            self._frames.close(error)

    def _release_once(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        try:
            self._release()
        except Exception as exc:  # closing must never keep the kiosk from its next call
            log.warning("video source %s: closing: %r", self.name, exc)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"capture {self.name}",
                                            daemon=True)
            self._thread.start()
        try:
            frame = await self._frames.get()
        except HandoffClosed:
            raise MediaStreamError from None
        if self.readyState != "live":  # stopped while it waited
            raise MediaStreamError
        self.delivered_frames += 1
        return frame

    def stop(self) -> None:
        """End the track and let go of the device (by default waiting up to STOP_TIMEOUT_S
        for the thread, so that the next call can open it again)."""
        super().stop()
        self._stopping.set()
        thread = self._thread
        if thread is None:
            self._release_once()
        elif self.join_on_stop and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                log.warning("video source %s: the capture thread did not stop in %s s",
                            self.name, STOP_TIMEOUT_S)
        self._frames.close()  # wakes a recv() that waits; an error of the thread stays

    def stats(self) -> dict[str, Any]:
        return {"captured_frames": self.captured_frames, "dropped_frames": self.dropped_frames,
                "delivered_frames": self.delivered_frames, "error": self.error}
