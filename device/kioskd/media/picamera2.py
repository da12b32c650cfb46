"""The Raspberry Pi camera through picamera2 (libcamera), hardware- or software-encoded.

`Picamera2Camera(width, height, fps, encode=...)` makes the video track for one call (it is
the back end the registry names: it also has `settings`, `from_config` and `fallback_modes`):

- encode="hardware" (Pi 4, 3, Zero 2 W): the VideoCore H.264 encoder (picamera2's
  `H264Encoder`, /dev/video11) encodes the camera's YUV420 stream; an `Output` hands each
  access unit to a `PreEncodedH264Track`, which aiortc sends without encoding. Keyframe
  requests from the far end reach `force_key_frame()`, and the far end's bitrate estimate
  (REMB) sets the encoder's bitrate, clamped to [min_bitrate, bitrate]. The rtc session must
  call `kioskd.media.h264.attach_sender` and negotiate H.264 (see docs/media.md).
- encode="software" (Pi 5, which has no H.264 encoder): YUV420 `av.VideoFrame`s made
  straight from the camera's buffers (one copy, no RGB conversion); aiortc encodes them
  with VP8 or H.264 and handles keyframe requests and bitrate itself.

picamera2 is imported when a camera is made, not with this module: it probes the hardware
at import and is absent off the Pi. On Raspberry Pi OS it comes from the python3-picamera2
package, so kioskd's venv needs --system-site-packages.

Hardware quirks, kept here because they are not obvious from picamera2's API (from its source
and the bcm2835 codec driver's; to be confirmed by a hardware-in-the-loop call):

- picamera2 sets the encoder's bitrate only when the encoder starts. The bcm2835 codec
  driver also takes V4L2_CID_MPEG_VIDEO_BITRATE while streaming, so a new estimate is
  written to the encoder's device directly (`_set_v4l2_bitrate`).
- The encoder's level stays at the driver's 4.0 (picamera2 raises it for big streams only),
  above the 3.1 that 42e01f names; decoders go by the SPS, so browsers should not mind.
- On a Pi 5, picamera2's `H264Encoder` is libx264 inside picamera2 (`LibavH264Encoder`):
  encode="hardware" still works there, on the CPU, and bitrate changes wait for a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import av
from aiortc.mediastreams import MediaStreamTrack

from .capture import CameraUnavailable, ThreadedVideoTrack
from .h264 import PreEncodedH264Track
from .opening import BASIC_VIDEO

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

ENCODE_MODES = ("hardware", "software")
MIN_BITRATE = 250_000  # bits per second: below this the picture is mush at any size
BITS_PER_PIXEL = 0.09  # default bitrate per pixel per frame: 2.5 Mbps at 720p30
BITRATE_HYSTERESIS = 0.1  # follow estimates that differ by more than this share
CAPTURE_WAIT_S = 1.0  # capture_request timeout, so the capture thread sees stop()
CAMERA_RELEASE_WAIT_S = 5.0  # how long a new call waits for the last call's camera to close
# A camera that delivers nothing for this long is gone. libcamera has no "unplugged" signal
# that picamera2 passes on: requests just stop completing (or complete with errors, which
# picamera2 drops), so silence is how a lost camera or a loose ribbon cable shows.
CAMERA_STALL_S = 3.0

# One lock per camera number, held by the track that has the camera open. Opening waits for
# it, so a call that starts right after another doesn't find the camera still closing.
_camera_locks: dict[int, threading.Lock] = {}
_camera_locks_lock = threading.Lock()


def default_bitrate(width: int, height: int, fps: float) -> int:
    return max(MIN_BITRATE * 2, min(8_000_000, round(width * height * fps * BITS_PER_PIXEL)))


def _claim(camera_num: int) -> threading.Lock:
    with _camera_locks_lock:
        lock = _camera_locks.setdefault(camera_num, threading.Lock())
    if not lock.acquire(timeout=CAMERA_RELEASE_WAIT_S):
        raise CameraUnavailable(f"camera {camera_num} is still held by the previous call",
                                "busy")
    return lock


def _root_cause(exc: BaseException) -> BaseException:
    """picamera2 wraps libcamera's reason: "Camera __init__ sequence did not complete." from
    "Failed to acquire camera: Device or resource busy"."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _stalled(camera_num: int) -> CameraUnavailable:
    return CameraUnavailable(f"camera {camera_num} sent no frames for {CAMERA_STALL_S:g} s: "
                             "unplugged, or its ribbon cable is loose", "missing")


def _open(camera_num: int, width: int, height: int, fps: float) -> tuple[Any, dict[str, Any]]:
    """Open and configure the camera for YUV420 video; returns (picam2, main stream config)."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraUnavailable(
            "video.source picamera2 needs the picamera2 package (Raspberry Pi OS: apt install "
            f"python3-picamera2, and a venv made with --system-site-packages): {exc}", "missing"
        ) from None
    try:
        picam2 = Picamera2(camera_num)
    except IndexError:
        raise CameraUnavailable(
            f"libcamera finds no camera {camera_num}: check the ribbon cable and that "
            "`rpicam-hello --list-cameras` lists it", "missing"
        ) from None
    except RuntimeError as exc:
        cause = str(_root_cause(exc))
        if "busy" in cause.lower():
            raise CameraUnavailable(
                f"camera {camera_num} is busy ({cause}): another program (rpicam-*, another "
                "kioskd) is using it", "busy"
            ) from None
        raise CameraUnavailable(f"camera {camera_num} can't be opened ({cause})",
                                "missing" if "not found" in cause.lower() else "failed") from None
    try:
        period_us = round(1_000_000 / fps)
        config = picam2.create_video_configuration(
            main={"size": (width, height), "format": "YUV420"},
            controls={"FrameDurationLimits": (period_us, period_us)},
            display=None,
            encode="main",
            queue=False,  # hand out frames made after the request: fresh, not one behind
        )
        picam2.configure(config)
        main = picam2.camera_configuration()["main"]
    except Exception as exc:
        picam2.close()
        # picamera2's message goes on with the whole configuration: the start says enough.
        said = str(exc) if len(str(exc)) <= 80 else str(exc)[:80] + "..."
        raise CameraUnavailable(
            f"camera {camera_num} refused YUV420 {width}x{height}@{fps:g}: {said}",
            "unsupported",
        ) from None
    if tuple(main["size"]) != (width, height):
        log.warning("camera %d gives %dx%d, not %dx%d", camera_num, *main["size"], width, height)
    return picam2, main


def _close(picam2: Any, held: threading.Lock) -> None:
    try:
        picam2.stop_encoder()
    except Exception as exc:
        log.debug("stopping the encoder: %r", exc)
    try:
        picam2.stop()
        picam2.close()
    except Exception as exc:  # closing must never keep the kiosk from its next call
        log.warning("closing the camera: %r", exc)
    finally:
        held.release()


class Picamera2Backend:
    """The picamera2 back end: calling it makes one call's camera track, of the kind `encode`
    says (two track classes, so it is a maker of tracks rather than a track class itself)."""

    def __call__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 30,
        encode: str = "hardware",
        bitrate: int | None = None,
        keyframe_interval: int | None = None,
        min_bitrate: int = MIN_BITRATE,
        camera_num: int = 0,
    ) -> MediaStreamTrack:
        """The camera as a video track: pre-encoded H.264 (encode="hardware") or YUV420 frames
        for aiortc to encode (encode="software").

        `bitrate` (bits per second, default by size and rate) is where the hardware encoder
        starts and the most it is set to; `keyframe_interval` is in frames (default 2 s).
        Raises CameraUnavailable when the camera is missing, busy or refuses the mode.
        """
        if encode == "hardware":
            return Picamera2H264Track(width, height, fps, bitrate=bitrate,
                                      keyframe_interval=keyframe_interval,
                                      min_bitrate=min_bitrate, camera_num=camera_num)
        if encode == "software":
            return Picamera2YuvTrack(width, height, fps, camera_num=camera_num)
        raise ValueError(f'encode "{encode}" is not one of {ENCODE_MODES}')

    @staticmethod
    def settings(config: Config) -> dict[str, Any]:
        video = config.video
        return {"width": video.width, "height": video.height, "fps": video.fps,
                "encode": video.encoder, "bitrate": video.bitrate_kbps * 1000 or None}

    def from_config(self, config: Config, **overrides: Any) -> MediaStreamTrack:
        return self(**{**self.settings(config), **overrides})

    @staticmethod
    def for_peer(settings: dict[str, Any], codecs: Sequence[str]) -> dict[str, Any]:
        """The settings for a call whose peer takes only `codecs` (video codec names): a peer
        without H.264 gets the camera's frames encoded by aiortc instead of the hardware
        stream, at the basic settings (what a Pi's cores encode in real time; the Pi 5
        profile's own)."""
        if settings.get("encode") != "hardware" or any(c.lower() == "h264" for c in codecs):
            return settings
        basic = {key: min(settings[key], value) for key, value in BASIC_VIDEO.items()}
        log.info("the caller takes no H.264 (%s): the camera's frames go through the software "
                 "encoder at %dx%d@%g", ", ".join(codecs) or "no video codec", basic["width"],
                 basic["height"], basic["fps"])
        return {**settings, **basic, "encode": "software", "bitrate": None}

    @staticmethod
    def fallback_modes(settings: dict[str, Any]) -> list[dict[str, Any]]:
        """After `settings` were refused: the basic settings, at the encoder's default bitrate
        for them."""
        basic = {**settings, **BASIC_VIDEO}
        if "bitrate" in basic:
            basic["bitrate"] = None
        return [basic] if basic != settings else []


# What the registry names ("kioskd.media.picamera2:Picamera2Camera").
Picamera2Camera: Final = Picamera2Backend()


def _set_v4l2_bitrate(device: Any, bitrate: int) -> None:
    """Set the bitrate of a running V4L2 encoder (the file picamera2 opened, /dev/video11)."""
    import fcntl

    from videodev2 import V4L2_CID_MPEG_VIDEO_BITRATE, VIDIOC_S_CTRL, v4l2_control

    control = v4l2_control()
    control.id = V4L2_CID_MPEG_VIDEO_BITRATE
    control.value = bitrate
    fcntl.ioctl(device, VIDIOC_S_CTRL, control)


class EncoderControl:
    """Keyframe requests and bitrate estimates for a picamera2 encoder.

    `follow_bitrate(bps)` clamps the estimate to [minimum, maximum] and applies it when it
    differs from the current bitrate by more than BITRATE_HYSTERESIS (REMBs arrive several
    times a second, mostly saying the same).
    """

    def __init__(self, encoder: Any, minimum: int, maximum: int) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"bitrate range {minimum}..{maximum} is empty")
        self.encoder, self.minimum, self.maximum = encoder, minimum, maximum
        self.bitrate = maximum
        self.keyframes_requested = 0
        self._lock = threading.Lock()
        self._v4l2_failed = False

    def request_keyframe(self) -> None:
        self.keyframes_requested += 1
        self.encoder.force_key_frame()

    def follow_bitrate(self, bps: int) -> None:
        target = max(self.minimum, min(self.maximum, int(bps)))
        with self._lock:
            if abs(target - self.bitrate) <= self.bitrate * BITRATE_HYSTERESIS and not (
                target in (self.minimum, self.maximum) and target != self.bitrate
            ):
                return
            self.bitrate = target
        self.encoder.bitrate = target  # picamera2 reads it when the encoder (re)starts
        device = getattr(self.encoder, "vd", None)
        if device is not None and not device.closed and not self._v4l2_failed:
            try:
                _set_v4l2_bitrate(device, target)
            except Exception as exc:
                self._v4l2_failed = True  # say it once; the bitrate stays as it started
                log.warning("the encoder refused a new bitrate (%r): keeping %d bps", exc,
                            self.maximum)
                return
        log.debug("encoder bitrate %d bps (far end estimates %d)", target, bps)


class Picamera2H264Track(PreEncodedH264Track):
    """The camera through picamera2's H.264 encoder, as pre-encoded packets.

    The camera is opened and configured when the track is made (errors surface when the
    call starts) and started at the first recv() (off the event loop: it takes a while).
    A camera that then goes silent for CAMERA_STALL_S ends the track, with `error` saying so.
    stop() closes the camera on a thread; the next call waits for it.
    """

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30,
                 bitrate: int | None = None, keyframe_interval: int | None = None,
                 min_bitrate: int = MIN_BITRATE, camera_num: int = 0,
                 queue_size: int = 8) -> None:
        super().__init__(queue_size=queue_size)
        self.width, self.height, self.fps = width, height, fps
        self.camera_num = camera_num
        bitrate = bitrate or default_bitrate(width, height, fps)
        self.keyframe_interval = keyframe_interval or max(1, round(fps * 2))
        self._held = _claim(camera_num)
        try:
            self._picam2, self._main = _open(camera_num, width, height, fps)
        except BaseException:
            self._held.release()
            raise
        try:
            self._make_encoder(bitrate, min_bitrate)
        except BaseException:
            _close(self._picam2, self._held)
            raise
        self._state_lock = threading.Lock()
        self._started = False
        self._closed = False
        self._start_task: asyncio.Future[None] | None = None
        self._last_output_at = time.monotonic()  # written by the encoder's thread
        self._watchdog: asyncio.TimerHandle | None = None

    def _make_encoder(self, bitrate: int, min_bitrate: int) -> None:
        try:
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output
        except ImportError as exc:
            raise CameraUnavailable(f"picamera2 has no H.264 encoder here: {exc}") from None
        options = dict(bitrate=bitrate, repeat=True, iperiod=self.keyframe_interval,
                       framerate=self.fps)
        try:
            # Baseline: what every browser decodes (its SPS says 42c0xx or 4240xx).
            self._encoder = H264Encoder(**options, profile="baseline")
        except TypeError:  # picamera2 before profiles (2024): the driver's default
            self._encoder = H264Encoder(**options)
        self.control = EncoderControl(self._encoder, min(min_bitrate, bitrate), bitrate)
        self.on_keyframe_request = self.control.request_keyframe
        self.on_bitrate_estimate = self.control.follow_bitrate
        track = self

        class TrackOutput(Output):
            """Runs on the encoder's thread: hand the access unit over, never block."""

            def outputframe(self, frame: Any, keyframe: bool = True, timestamp: Any = None,
                            packet: Any = None, audio: bool = False) -> None:
                if not audio and frame is not None:
                    track._last_output_at = time.monotonic()
                    track.push(frame, timestamp)

        self._output = TrackOutput()

    def _start_camera(self) -> None:
        with self._state_lock:
            if self._closed or self._started:
                return
            self._picam2.start_encoder(self._encoder, self._output)
            self._picam2.start()
            self._started = True
        log.info("camera: %dx%d@%g, hardware H.264 at %d bps, a keyframe every %d frames",
                 self.width, self.height, self.fps, self.control.bitrate, self.keyframe_interval)

    def _close_camera(self) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        _close(self._picam2, self._held)

    async def recv(self) -> av.Packet:
        if self._start_task is None and self.readyState == "live":
            self._start_task = asyncio.ensure_future(asyncio.to_thread(self._start_camera))
            self._start_task.add_done_callback(self._started_or_failed)
        if self._start_task is not None and not self._start_task.done():
            await asyncio.wait([self._start_task])
        return await super().recv()

    def _started_or_failed(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            error = "cancelled" if task.cancelled() else repr(task.exception())
            log.error("camera start failed: %s; the call goes on without video", error)
            self.end(f"camera {self.camera_num} did not start: {error}")
            return
        self._last_output_at = time.monotonic()
        self._check_output()

    def _check_output(self) -> None:
        """On the loop, a few times per CAMERA_STALL_S while the track lives: a camera whose
        encoder has gone silent is gone (see CAMERA_STALL_S)."""
        if self.readyState != "live" or self.error is not None:
            return
        if time.monotonic() - self._last_output_at > CAMERA_STALL_S:
            error = _stalled(self.camera_num)
            log.error("%s", error)
            self.end(str(error))
            return
        self._watchdog = asyncio.get_running_loop().call_later(CAMERA_STALL_S / 4,
                                                               self._check_output)

    def stop(self) -> None:
        super().stop()
        if self._watchdog is not None:
            self._watchdog.cancel()
        threading.Thread(target=self._close_camera, name="camera close", daemon=True).start()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "encoder_bitrate": self.control.bitrate,
                "keyframes_forced": self.control.keyframes_requested}


class Picamera2YuvTrack(ThreadedVideoTrack):
    """The camera's YUV420 frames as av.VideoFrames, for aiortc to encode.

    Each frame is one copy of the camera buffer (so it can go back to the camera at once),
    wrapped as yuv420p with the buffer's stride: no colour conversion.
    """

    join_on_stop = False  # closing the camera takes a while; the next open waits for it

    def __init__(self, width: int = 640, height: int = 480, fps: float = 24,
                 camera_num: int = 0) -> None:
        super().__init__(f"picamera2 {camera_num}")
        self.fps, self.camera_num = fps, camera_num
        self._held = _claim(camera_num)
        try:
            self._picam2, main = _open(camera_num, width, height, fps)
        except BaseException:
            self._held.release()
            raise
        self.width, self.height = main["size"]

    def _capture(self) -> None:
        self._picam2.start()
        log.info("camera: %dx%d@%g, YUV420 for software encoding", self.width, self.height,
                 self.fps)
        last_frame_at = time.monotonic()
        while not self._stopping.is_set():
            try:
                request = self._picam2.capture_request(wait=CAPTURE_WAIT_S)
            except TimeoutError:
                if time.monotonic() - last_frame_at > CAMERA_STALL_S:
                    raise _stalled(self.camera_num) from None
                continue
            last_frame_at = time.monotonic()
            try:
                array = request.make_array("main")
                captured_ns = request.get_metadata().get("SensorTimestamp")
            finally:
                request.release()
            # rows: height of Y, then height/2 of U and V side by side at half the stride
            frame = av.VideoFrame.from_numpy_buffer(array, format="yuv420p", width=self.width)
            self._deliver(frame, captured_ns / 1e9 if captured_ns else None)

    def _release(self) -> None:
        _close(self._picam2, self._held)
