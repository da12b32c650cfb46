"""The kiosk's video encoder and decoder settings: less CPU than aiortc's defaults.

aiortc builds its libvpx and libx264 contexts inline, with settings for a desktop: VP8 with
libvpx's temporal denoiser (`noise-sensitivity=4`, up to half of the encoder's CPU) at
`cpu-used=-6`; H.264 at libx264's default preset (medium, ten times the CPU of ultrafast).
The tuned encoders here keep aiortc's packetizers, bitrate handling and keyframe forcing (they
subclass aiortc's encoders and only create the codec context themselves), and set what
`video.encoder_speed` picks:

    quality   VP8 cpu-used -6 (aiortc's, libwebrtc's on a desktop); H.264 preset veryfast
    balanced  VP8 cpu-used -12 (libwebrtc's on ARM);                 H.264 preset superfast
    fast      VP8 cpu-used -16 (libvpx's fastest);                   H.264 preset ultrafast

The denoiser is off at every level: the kiosk's synthetic picture has no noise, and a Pi
camera's frames come through the ISP's own denoiser. The decoders are FFmpeg's (for VP8 its
own decoder, not libvpx's) on one thread. docs/media.md has the measurements.

aiortc has no API to choose encoder settings: its sender calls `get_encoder(codec)` and its
receiver `get_decoder(codec)`, names each module imports from `aiortc.codecs`. `install()`
replaces those two names with `kiosk_encoder` and `kiosk_decoder`, which return the tuned
classes for VP8 and H.264 and aiortc's own for every other codec. `configure(speed)` sets the
level for the encoders created from then on: each call's session calls it with the config's
`video.encoder_speed`, so a reloaded config applies from the next call.
"""

from __future__ import annotations

import fractions
import logging
import multiprocessing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
from aiortc import codecs as aiortc_codecs
from aiortc.codecs.base import Decoder, Encoder
from aiortc.codecs.h264 import MAX_FRAME_RATE, H264Decoder, H264Encoder
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, number_of_threads
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame
from av.video.codeccontext import VideoCodecContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderSettings:
    """What a speed level sets. `vp8` is libvpx options on top of aiortc's rate control."""

    vp8: Mapping[str, str]
    x264_preset: str


SPEEDS: dict[str, EncoderSettings] = {
    "quality": EncoderSettings({"cpu-used": "-6", "noise-sensitivity": "0"}, "veryfast"),
    "balanced": EncoderSettings({"cpu-used": "-12", "noise-sensitivity": "0"}, "superfast"),
    "fast": EncoderSettings({"cpu-used": "-16", "noise-sensitivity": "0"}, "ultrafast"),
}
DEFAULT_SPEED = "fast"

_current = SPEEDS[DEFAULT_SPEED]


def configure(speed: str) -> None:
    """Use the settings of `speed` for every encoder created from now on."""
    global _current
    if speed not in SPEEDS:
        raise ValueError(f"unknown encoder speed {speed!r}: known are {', '.join(SPEEDS)}")
    if SPEEDS[speed] is not _current:
        log.info("video encoder speed: %s", speed)
    _current = SPEEDS[speed]


def current() -> EncoderSettings:
    return _current


def _stale(codec: VideoCodecContext | None, frame: Frame, bitrate: int) -> bool:
    """aiortc's own test for re-creating its context: no context yet, a new picture size, or
    a bitrate that moved by more than 10%. Passing it first leaves aiortc nothing to redo."""
    assert isinstance(frame, av.VideoFrame)
    if codec is None or frame.width != codec.width or frame.height != codec.height:
        return True
    made_for = codec.bit_rate or 0
    return abs(bitrate - made_for) > 0.1 * made_for


class TunedVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder with a libvpx context made to the kiosk's settings."""

    def __init__(self, settings: EncoderSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or _current  # fixed for this encoder's life

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if _stale(self.codec, frame, self.target_bitrate):
            self.codec = self._context(frame)
        return super().encode(frame, force_keyframe)

    def _context(self, frame: Any) -> VideoCodecContext:
        bitrate = self.target_bitrate
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "yuv420p"
        codec.bit_rate = bitrate
        # aiortc's rate control, unchanged (it builds it inline, so it is repeated here):
        # CBR with a 1 s buffer, no lag, keyframes only when asked for. Not its "partitions",
        # which FFmpeg's libvpx wrapper does not know (one token partition is libvpx's default).
        codec.gop_size, codec.qmin, codec.qmax = 3000, 2, 56
        codec.options = {
            "bufsize": str(bitrate), "minrate": str(bitrate), "maxrate": str(bitrate),
            "deadline": "realtime", "lag-in-frames": "0", "overshoot-pct": "15",
            "undershoot-pct": "100", "static-thresh": "1",
            **self.settings.vp8,
        }
        codec.thread_count = number_of_threads(frame.width * frame.height,
                                               multiprocessing.cpu_count())
        return codec


class TunedH264Encoder(H264Encoder):
    """aiortc's H.264 encoder with a libx264 context made to the kiosk's settings."""

    def __init__(self, settings: EncoderSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or _current

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if _stale(self.codec, frame, self.target_bitrate):
            self.codec = self._context(frame)
        return super().encode(frame, force_keyframe)

    def _context(self, frame: Any) -> VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        assert isinstance(codec, VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "yuv420p"
        codec.bit_rate = self.target_bitrate
        codec.framerate = fractions.Fraction(MAX_FRAME_RATE, 1)
        codec.time_base = fractions.Fraction(1, MAX_FRAME_RATE)
        codec.profile = "Baseline"
        codec.options = {"level": "31", "tune": "zerolatency",
                         "preset": self.settings.x264_preset}
        return codec


class TunedVp8Decoder(Vp8Decoder):
    """FFmpeg's own VP8 decoder instead of libvpx's: about a third less CPU per frame. One
    thread: FFmpeg's default (a thread per core) cost the same or a little more in total."""

    def __init__(self) -> None:
        self.codec = av.CodecContext.create("vp8", "r")
        self.codec.thread_count = 1


class TunedH264Decoder(H264Decoder):
    """One thread: FFmpeg's default (slice threads, a thread per core) cost no less in total,
    and a browser's single-slice stream gives them nothing to share."""

    def __init__(self) -> None:
        super().__init__()
        self.codec.thread_count = 1


def kiosk_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        return TunedVp8Encoder()
    if mime == "video/h264":
        return TunedH264Encoder()
    return aiortc_codecs.get_encoder(codec)


def kiosk_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    mime = codec.mimeType.lower()
    if mime == "video/vp8":
        return TunedVp8Decoder()
    if mime == "video/h264":
        return TunedH264Decoder()
    return aiortc_codecs.get_decoder(codec)


def install() -> None:
    """Make aiortc's senders and receivers use `kiosk_encoder` and `kiosk_decoder`. Idempotent.

    aiortc offers no way to pass encoder settings: this rebinds the names its sender and
    receiver modules look up when a call's first frame needs a coder."""
    aiortc.rtcrtpsender.get_encoder = kiosk_encoder
    aiortc.rtcrtpreceiver.get_decoder = kiosk_decoder
