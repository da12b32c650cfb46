"""The fake's knobs and records (not part of picamera2's API)."""

from __future__ import annotations

import threading
from typing import Any

CAMERAS = 1  # how many cameras global_camera_info() lists; 0: Picamera2() raises IndexError
BUSY = False  # another process holds the camera: Picamera2() fails as libcamera's acquire does
# The largest main stream the camera can be configured for (None: any): configure() fails
# beyond it, as libcamera's does when a mode can't be set up (buffers, sensor, ISP).
MAX_SIZE: tuple[int, int] | None = None

instances: list[Any] = []  # every Picamera2 made, newest last
encoders: list[Any] = []  # every H264Encoder made, newest last
open_cameras: set[int] = set()  # camera numbers acquired and not yet closed
unplugged: set[int] = set()  # camera numbers gone since unplug()
busy_refusals = 0  # Picamera2() calls refused because the camera was busy
lock = threading.Lock()


def unplug(camera_num: int = 0) -> None:
    """The camera goes away mid-stream. As with libcamera, nothing says so: requests stop
    completing, so capture_request(wait=...) times out and the encoder gets no more frames;
    the camera is no longer listed, so opening it again fails as a missing one does."""
    with lock:
        unplugged.add(camera_num)


def replug(camera_num: int = 0) -> None:
    """The camera is back (plugged in again): it is listed and can be opened once more."""
    with lock:
        unplugged.discard(camera_num)


def reset() -> None:
    global CAMERAS, BUSY, MAX_SIZE, busy_refusals
    CAMERAS, BUSY, MAX_SIZE, busy_refusals = 1, False, None, 0
    for camera in list(instances):
        camera.close()
    instances.clear()
    encoders.clear()
    open_cameras.clear()
    unplugged.clear()
