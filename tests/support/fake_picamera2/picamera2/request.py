"""Completed requests: a frame's buffers and metadata, reference-counted as in picamera2."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np


def shaped(buffer: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """The 2d view picamera2 gives of a stream buffer (YUV420: h * 3/2 rows of the stride)."""
    width, height = config["size"]
    if config["format"] in ("YUV420", "YVU420"):
        return buffer.reshape((height * 3 // 2, config["stride"]))
    raise RuntimeError("Format " + config["format"] + " not supported by the fake")


class CompletedRequest:
    def __init__(self, picam2: Any, buffers: dict[str, np.ndarray], metadata: dict[str, Any]):
        self.picam2 = picam2
        self.ref_count = 1
        self.lock = threading.Lock()
        self.config = picam2.camera_config.copy()
        self.stream_map = dict(picam2.stream_map)
        self._buffers = buffers
        self._metadata = metadata

    def acquire(self) -> None:
        with self.lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        with self.lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            if self.ref_count == 0:
                self._buffers = {}
                self.config = {}
                self.stream_map = {}

    def _buffer(self, name: str) -> np.ndarray:
        if self.stream_map.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return self._buffers[name]

    def make_buffer(self, name: str) -> np.ndarray:
        """Make a 1D numpy array from the named stream's buffer (a copy)."""
        return np.array(self._buffer(name), dtype=np.uint8)

    def make_array(self, name: str) -> np.ndarray:
        """Make a 2d numpy array from the named stream's buffer (a copy)."""
        return np.copy(shaped(self._buffer(name), self.config[name]))

    def get_metadata(self) -> dict[str, Any]:
        return dict(self._metadata)


class MappedArray:
    """`with MappedArray(request, "main") as m: m.array` -- the buffer without a copy."""

    def __init__(self, request: CompletedRequest, stream: str, reshape: bool = True,
                 write: bool = True) -> None:
        self._request, self._stream, self._reshape = request, stream, reshape
        self._array: np.ndarray | None = None

    def __enter__(self) -> MappedArray:
        buffer = self._request._buffer(self._stream)
        config = self._request.config[self._stream]
        self._array = shaped(buffer, config) if self._reshape else buffer
        return self

    def __exit__(self, *exc: object) -> None:
        self._array = None

    @property
    def array(self) -> np.ndarray | None:
        return self._array
