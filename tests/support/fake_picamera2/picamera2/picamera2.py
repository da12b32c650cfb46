"""Picamera2 with a synthetic sensor: the stamped test pattern as YUV420, in real time."""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import threading
import time
from enum import Enum
from types import SimpleNamespace
from typing import Any

import numpy as np

from kioskd.media.synthetic import TestPattern, wall_clock_ms

from . import fake
from .outputs import FileOutput
from .request import CompletedRequest

_log = logging.getLogger("picamera2.picamera2")

STRIDE_ALIGN = 64  # the ISP writes YUV420 rows of a 64-byte-aligned stride
FORMATS = ("YUV420",)  # the only format the fake sensor renders


class Preview(Enum):
    NULL = 0
    DRM = 1
    QT = 2
    QTGL = 3


class Picamera2:
    def __init__(self, camera_num=0, verbose_console=None, tuning=None, allocator=None):
        # Like the real one: the index into the camera list (IndexError when there is none),
        # then acquiring the camera, which fails when another process holds it.
        camera_num = self.global_camera_info()[camera_num]["Num"]
        self.is_open = False
        self.camera_idx = camera_num
        with fake.lock:
            if fake.BUSY or camera_num in fake.open_cameras:
                fake.busy_refusals += 1
                try:
                    raise RuntimeError("Failed to acquire camera: Device or resource busy")
                except RuntimeError as e:
                    _log.error("Camera __init__ sequence did not complete.")
                    raise RuntimeError("Camera __init__ sequence did not complete.") from e
            fake.open_cameras.add(camera_num)
        self.is_open = True
        self.camera_config: dict[str, Any] = {}
        self.stream_map: dict[str, Any] = {}
        self.started = False
        self.camera_properties = {"Model": "fake_imx708", "PixelArraySize": (4608, 2592),
                                  "ColorFilterArrangement": 0}
        self.sensor_resolution = (4608, 2592)
        self.camera_ctrl_info = {"FrameDurationLimits": (
            None, SimpleNamespace(min=16666, max=1_000_000, default=33333))}
        self.controls: dict[str, Any] = {}
        self.frames = 0
        self.lock = threading.Lock()  # guards _encoders, as in picamera2
        self._encoders: set[Any] = set()
        self._completed: list[CompletedRequest] = []
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._pattern: TestPattern | None = None
        fake.instances.append(self)

    @staticmethod
    def global_camera_info():
        return [{"Model": "fake_imx708", "Location": 2, "Rotation": 180,
                 "Id": f"/base/fake/imx708@{n}", "Num": n} for n in range(fake.CAMERAS)
                if n not in fake.unplugged]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- configuration ------------------------------------------------------------------

    @staticmethod
    def _stream(defaults, updates):
        if updates is None:
            return None
        stream = dict(defaults)
        for key, value in updates.items():
            if key not in ("format", "size", "stride", "preserve_ar"):
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are "
                                 "('format', 'size', 'stride', 'preserve_ar')")
            stream[key] = value
        width, height = stream["size"]
        stream["size"] = (width - width % 2, height - height % 2)  # align_stream(optimal=False)
        return stream

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None,
                                   colour_space=None, buffer_count=6, controls={},
                                   display="main", encode="main", queue=True, sensor={},
                                   use_case="video"):
        """Make a configuration suitable for video recording."""
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = self._stream({"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, main)
        lores = self._stream({"format": "YUV420", "size": main["size"], "preserve_ar": False},
                             lores)
        controls = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | controls
        config = {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                  "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores,
                  "raw": raw, "controls": controls, "sensor": sensor}
        for role, name in (("display", display), ("encode", encode)):
            if name is not None and config.get(name) is None:
                raise RuntimeError(f"{role.capitalize()} stream {name} was not defined")
            config[role] = name
        return config

    def configure(self, camera_config=None) -> None:
        if camera_config is None or camera_config == "video":
            camera_config = self.create_video_configuration()
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = copy.deepcopy(camera_config)
        main = config["main"]
        if main["format"] not in FORMATS:
            raise RuntimeError(f"the fake camera renders only {FORMATS}, not {main['format']}")
        width, height = main["size"]
        if fake.MAX_SIZE is not None and (width > fake.MAX_SIZE[0] or height > fake.MAX_SIZE[1]):
            raise RuntimeError(f"Configuration failed: {camera_config}")
        main["stride"] = -(-width // STRIDE_ALIGN) * STRIDE_ALIGN
        main["framesize"] = main["stride"] * height * 3 // 2
        self.camera_config = config
        self.stream_map = {"main": "main-stream"}
        self.controls = dict(config.get("controls") or {})
        self._pattern = TestPattern(width, height)
        self.encode_stream_name = config.get("encode") or "main"

    def camera_configuration(self):
        return self.camera_config

    def stream_configuration(self, name="main"):
        return self.camera_config[name]

    def set_controls(self, controls) -> None:
        self.controls.update(controls)

    # -- running ------------------------------------------------------------------------

    def start(self, config=None, show_preview=False) -> None:
        if not self.camera_config and config is None:
            config = "video"
        if config is not None:
            self.configure(config)
        if self.started:
            return
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._run, name="fake picamera2", daemon=True)
        self.started = True
        self._thread.start()

    def stop(self) -> None:
        if not self.started:
            return
        self._stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        self.started = False
        with self._condition:
            for request in self._completed:
                request.release()
            self._completed = []
            self._condition.notify_all()

    def close(self) -> None:
        if not self.is_open:
            return
        self.stop()
        for encoder in list(self._encoders):
            if encoder.running:
                encoder.stop()
        self._encoders.clear()
        with fake.lock:
            fake.open_cameras.discard(self.camera_idx)
        self.is_open = False
        self.camera_config = {}

    def _frame_duration_us(self) -> int:
        limits = self.controls.get("FrameDurationLimits") or (33333, 33333)
        return max(int(limits[0]), 1000)

    def _render(self, index: int) -> np.ndarray:
        main = self.camera_config["main"]
        (width, height), stride = main["size"], main["stride"]
        assert self._pattern is not None
        frame = self._pattern.render(index, index, wall_clock_ms())
        buffer = np.zeros(main["framesize"], dtype=np.uint8)
        y = buffer[: stride * height].reshape(height, stride)
        chroma = buffer[stride * height:].reshape(height, stride // 2)
        for plane, target in ((frame.planes[0], y[:, :width]),
                              (frame.planes[1], chroma[: height // 2, : width // 2]),
                              (frame.planes[2], chroma[height // 2:, : width // 2])):
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
            target[:] = rows[: target.shape[0], : target.shape[1]]
        return buffer

    def _run(self) -> None:
        period = self._frame_duration_us() / 1e6
        due = time.monotonic()
        index = 0
        while not self._stop_event.is_set():
            delay = due - time.monotonic()
            if delay > 0 and self._stop_event.wait(delay):
                break
            if self.camera_idx in fake.unplugged:  # no more requests complete
                due += period
                continue
            timestamp_ns = time.monotonic_ns()
            request = CompletedRequest(self, {"main": self._render(index)},
                                       {"SensorTimestamp": timestamp_ns,
                                        "FrameDuration": round(period * 1e6)})
            self.frames += 1
            with self.lock:
                encoders = [e for e in self._encoders if e.name in self.stream_map]
            for encoder in encoders:
                encoder.encode(encoder.name, request)
            with self._condition:
                request.acquire()
                self._completed.append(request)
                keep = 1 if self.camera_config.get("queue", True) else 0
                while len(self._completed) > max(keep, 1):
                    self._completed.pop(0).release()
                self._condition.notify_all()
            request.release()
            index += 1
            due += period
            if time.monotonic() - due > period:  # fell behind: a sensor drops frames
                due = time.monotonic()

    # -- capturing ------------------------------------------------------------------------

    def _next_request(self, wait) -> CompletedRequest:
        # `is`, not `in (None, True)`: 1.0 == True, and wait=1.0 is a timeout of a second.
        timeout = None if wait is None or wait is True else float(wait)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            seen = self.frames
            # queue=True may hand back the request already waiting; queue=False waits for
            # a frame that starts after the call.
            while not (self._completed and (self.camera_config.get("queue", True)
                                            or self.frames > seen)):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise concurrent.futures.TimeoutError()
                if not self.started:
                    raise RuntimeError("Camera is not running")
                self._condition.wait(remaining if remaining is not None else 0.1)
            return self._completed.pop(-1)

    def capture_request(self, wait=None, signal_function=None, flush=None):
        """The next completed request; release() it when done."""
        return self._next_request(wait)

    def capture_array(self, name="main", wait=None, signal_function=None):
        request = self._next_request(wait)
        try:
            return request.make_array(name)
        finally:
            request.release()

    def capture_metadata(self, wait=None, signal_function=None):
        request = self._next_request(wait)
        try:
            return request.get_metadata()
        finally:
            request.release()

    # -- encoders -------------------------------------------------------------------------

    @property
    def encoders(self):
        return self._encoders

    def start_encoder(self, encoder=None, output=None, pts=None, quality=None, name=None) -> None:
        _encoder = encoder
        if _encoder is None:
            if len(self._encoders) > 1:
                raise RuntimeError("Multiple possible encoders, need to pass encoder")
            _encoder = next(iter(self._encoders), None)
        if _encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            if isinstance(output, str):
                output = FileOutput(output, pts=pts)
            _encoder.output = output
        streams = self.camera_configuration()
        if not streams:
            raise RuntimeError("Camera has not been configured")
        if name is None:
            name = self.encode_stream_name
        if streams.get(name) is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        _encoder.name = name
        _encoder.width, _encoder.height = streams[name]["size"]
        _encoder.format = streams[name]["format"]
        _encoder.stride = streams[name]["stride"]
        min_frame_duration = max(self.camera_ctrl_info["FrameDurationLimits"][1].min, 33333)
        try:
            if _encoder.framerate is None:
                _encoder.framerate = 1000000 / min_frame_duration
        except AttributeError:
            pass
        _encoder.start(quality=quality)
        with self.lock:
            self._encoders.add(_encoder)

    def stop_encoder(self, encoders=None) -> None:
        if encoders is None:
            remove = list(self._encoders)
        elif isinstance(encoders, (list, set)):
            remove = list(encoders)
        else:
            remove = [encoders]
        for encoder in remove:
            encoder.stop()
        with self.lock:
            for encoder in remove:
                self._encoders.discard(encoder)

    def start_recording(self, encoder, output, pts=None, config=None, quality=None, name=None):
        if not self.camera_config and config is None:
            config = "video"
        if config is not None:
            self.configure(config)
        self.start_encoder(encoder, output, pts=pts, quality=quality, name=name)
        self.start()

    def stop_recording(self) -> None:
        self.stop()
        self.stop_encoder()
