"""The fake's knobs and records (not part of picamera2's API)."""

from __future__ import annotations

import threading
from typing import Any

CAMERAS = 1  # how many cameras global_camera_info() lists; 0: Picamera2() raises IndexError
BUSY = False  # another process holds the camera: Picamera2() fails as libcamera's acquire does

instances: list[Any] = []  # every Picamera2 made, newest last
encoders: list[Any] = []  # every H264Encoder made, newest last
open_cameras: set[int] = set()  # camera numbers acquired and not yet closed
lock = threading.Lock()


def reset() -> None:
    global CAMERAS, BUSY
    CAMERAS, BUSY = 1, False
    for camera in list(instances):
        camera.close()
    instances.clear()
    encoders.clear()
    open_cameras.clear()
