"""Pre-encoded H.264: a video track of Annex-B access units that aiortc sends without encoding.

A camera with its own encoder (the Pi's VideoCore, through picamera2) hands us one access
unit per frame. `PreEncodedH264Track.push()` takes them on the camera's thread, never
blocking it; `recv()` returns them as `av.Packet`s with 90 kHz timestamps, which aiortc's
sender packetizes (`H264Encoder.pack`) instead of encoding. Along the way the track

- drops the frames before the first keyframe (a decoder can't start on a P-frame);
- makes sure every keyframe carries SPS and PPS in front of it (the last ones seen), so a
  receiver that joins or recovers at any keyframe can decode it;
- on overflow (the sender fell behind) drops everything queued and waits for the next
  keyframe, asking the encoder for one: dropping single P-frames would smear the picture
  until the next keyframe anyway.

aiortc handles RTCP for such a track only half-way: a PLI/FIR sets a flag that only its own
encoder reads, and a REMB bitrate estimate goes to its own encoder, which `pack()` ignores.
`attach_sender(sender, track)` routes both to the track, which passes them on to
`on_keyframe_request()` and `on_bitrate_estimate(bps)` (the camera's encoder).

The negotiated codec must be H.264 (packetization-mode 1); `h264_preferences()` gives the
codec preferences for a transceiver that sends this track, Constrained Baseline 3.1
(profile-level-id 42e01f) first.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    unpack_remb_fci,
)

from ..handoff import Handoff, HandoffClosed

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
PROFILE_LEVEL_ID = "42e01f"  # Constrained Baseline, level 3.1: what browsers all decode

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
_START_CODE = b"\x00\x00\x00\x01"

# Keyframe requests closer together than this are passed on once: aiortc's receiver sends a
# PLI for every undecodable frame, and a browser repeats its own until a keyframe arrives.
KEYFRAME_REQUEST_INTERVAL_S = 0.5


def nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (3- or 4-byte start codes), without them."""
    units = []
    start = access_unit.find(b"\x00\x00\x01")
    while start != -1:
        start += 3
        end = access_unit.find(b"\x00\x00\x01", start)
        if end == -1:
            units.append(access_unit[start:])
            break
        # A 4-byte start code's leading zero belongs to it, not to the unit before.
        units.append(access_unit[start : end - 1 if access_unit[end - 1] == 0 else end])
        start = end
    return [unit for unit in units if unit]


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def profile_level_id(sps: bytes) -> str:
    """The SDP profile-level-id (6 hex digits) of an SPS NAL unit: profile, constraints, level."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    return sps[1:4].hex()


def is_baseline_decodable(sps: bytes) -> bool:
    """Whether a Constrained Baseline decoder (what 42e01f negotiates) can decode the stream:
    Baseline (profile 66; the Pi's encoder and x264 use none of its extra tools), or Main or
    Extended that say, with constraint_set0, that they keep to Baseline."""
    profile, constraints = sps[1], sps[2]
    return profile == 66 or (profile in (77, 88) and bool(constraints & 0x80))


class PreEncodedH264Track(MediaStreamTrack):
    """A video track of pre-encoded H.264 access units, returned as `av.Packet`s.

    The producer calls `push(access_unit, timestamp_us)` from one thread (any thread: the
    camera's, or the event loop's); it never blocks. `queue_size` access units are held for
    a consumer that is late; past that, see the module docstring.

    `on_keyframe_request()` is called, at most every KEYFRAME_REQUEST_INTERVAL_S, when the
    far end lost the picture (PLI/FIR) or the track needs a keyframe to resume;
    `on_bitrate_estimate(bps)` with every REMB estimate for this stream. Both may be called
    from the producer's thread or the event loop, so they must be quick and thread-safe
    (picamera2's `force_key_frame()` bumps a counter).
    """

    kind = "video"
    pre_encoded_codec = "H264"  # tells the rtc session to negotiate H.264 for this track

    def __init__(
        self,
        queue_size: int = 8,
        on_keyframe_request: Callable[[], None] | None = None,
        on_bitrate_estimate: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.on_keyframe_request = on_keyframe_request
        self.on_bitrate_estimate = on_bitrate_estimate
        # (access unit, pts, keyframe); overflow is handled in push(), never by the hand-off
        self._queue: Handoff[tuple[bytes, int, bool]] = Handoff(queue_size)
        self._lock = threading.Lock()  # the producer state below
        # producer state
        self._waiting_for_keyframe = True
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._origin_us: int | None = None  # producer timestamp of pts 0
        self._origin_pts = 0
        self._last_pts = -1
        self._profile_checked = False
        self._last_request_at = -float("inf")
        self._request_lock = threading.Lock()
        # counters
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "access_units_in",
                "packets_out",
                "keyframes_out",
                "dropped_before_keyframe",
                "dropped_overflow",
                "headers_inserted",
                "keyframe_requests_in",
                "keyframe_requests_out",
                "bitrate_estimates_in",
            ),
            0,
        )
        self.last_bitrate_estimate: int | None = None

    # -- the producer side ----------------------------------------------------------------

    def push(self, access_unit: bytes, timestamp_us: int | None = None) -> None:
        """Queue one access unit (Annex-B); `timestamp_us` is its capture time in any
        microsecond clock (monotonic time at the call if None). Never blocks."""
        if self.readyState != "live" or not access_unit:
            return
        if timestamp_us is None:
            timestamp_us = time.monotonic_ns() // 1000
        access_unit = bytes(access_unit)  # picamera2 hands over bytes; others may not
        units = nal_units(access_unit)
        types = {nal_type(unit) for unit in units}
        keyframe = NAL_IDR in types
        request = False
        with self._lock:
            self.counters["access_units_in"] += 1
            for unit in units:
                kind = nal_type(unit)
                if kind == NAL_SPS:
                    self._sps = unit
                    self._check_profile(unit)
                elif kind == NAL_PPS:
                    self._pps = unit
            if self._waiting_for_keyframe and not keyframe:
                self.counters["dropped_before_keyframe"] += 1
                request = True
            elif keyframe and not (NAL_SPS in types and NAL_PPS in types) and not (
                self._sps and self._pps
            ):
                # A keyframe without parameter sets, and none seen before: undecodable.
                self.counters["dropped_before_keyframe"] += 1
                self._waiting_for_keyframe = True
                request = True
            else:
                data = access_unit
                if keyframe and not (NAL_SPS in types and NAL_PPS in types):
                    assert self._sps is not None and self._pps is not None
                    data = _START_CODE + self._sps + _START_CODE + self._pps + data
                    self.counters["headers_inserted"] += 1
                if len(self._queue) >= self._queue.maxsize:
                    # Behind: whatever is queued is stale, and P-frames can't be skipped.
                    self.counters["dropped_overflow"] += self._queue.clear()
                    if not keyframe:
                        self.counters["dropped_overflow"] += 1
                        self._waiting_for_keyframe = True
                        request = True
                if keyframe or not self._waiting_for_keyframe:
                    self._waiting_for_keyframe = False
                    self._queue.put((data, self._pts(timestamp_us), keyframe))
        if request:
            self.request_keyframe(from_far_end=False)

    def end(self, error: str | None = None) -> None:
        """The producer has finished (`error`: because it failed): recv() raises
        MediaStreamError once the queue is empty."""
        self._queue.close(error)

    @property
    def error(self) -> str | None:
        """Why the producer ended, if it failed."""
        return self._queue.error

    def _pts(self, timestamp_us: int) -> int:
        if self._origin_us is None:
            self._origin_us = timestamp_us
        pts = self._origin_pts + (timestamp_us - self._origin_us) * 9 // 100
        if pts <= self._last_pts:
            # The producer's clock went back (an encoder restart): carry on from here.
            self._origin_us, self._origin_pts = timestamp_us, self._last_pts + 1
            pts = self._origin_pts
        self._last_pts = pts
        return pts

    def _check_profile(self, sps: bytes) -> None:
        if self._profile_checked or len(sps) < 4:
            return
        self._profile_checked = True
        if not is_baseline_decodable(sps):
            log.warning(
                "the H.264 stream is profile-level-id %s, not Baseline: browsers that "
                "negotiated %s may not decode it", profile_level_id(sps), PROFILE_LEVEL_ID
            )

    # -- the consumer side ----------------------------------------------------------------

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            data, pts, keyframe = await self._queue.get()
        except HandoffClosed:
            raise MediaStreamError from None
        if self.readyState != "live":  # stopped while it waited
            raise MediaStreamError
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = keyframe
        self.counters["packets_out"] += 1
        self.counters["keyframes_out"] += keyframe
        return packet

    def stop(self) -> None:
        super().stop()
        self._queue.close()  # wakes a recv() that waits; the producer's error stays

    # -- feedback from the far end --------------------------------------------------------

    def request_keyframe(self, from_far_end: bool = True) -> None:
        """Ask the encoder for a keyframe (rate-limited). `attach_sender` calls this on PLI/FIR."""
        if from_far_end:
            self.counters["keyframe_requests_in"] += 1
        with self._request_lock:
            now = time.monotonic()
            if now - self._last_request_at < KEYFRAME_REQUEST_INTERVAL_S:
                return
            self._last_request_at = now
            self.counters["keyframe_requests_out"] += 1
        if self.on_keyframe_request is not None:
            try:
                self.on_keyframe_request()
            except Exception:
                log.exception("the encoder refused a keyframe request")

    def bitrate_estimate(self, bps: int) -> None:
        """The far end's estimate of the bitrate it can receive (REMB); goes to the encoder."""
        self.counters["bitrate_estimates_in"] += 1
        self.last_bitrate_estimate = bps
        if self.on_bitrate_estimate is not None:
            try:
                self.on_bitrate_estimate(bps)
            except Exception:
                log.exception("the encoder refused a bitrate of %d bps", bps)

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "queued": len(self._queue),
                "last_bitrate_estimate": self.last_bitrate_estimate, "error": self.error}


# -- the rtc session's hooks ----------------------------------------------------------------


def is_pre_encoded(track: MediaStreamTrack | None) -> bool:
    """Whether `track` returns encoded packets, so that its codec must be negotiated as is."""
    return getattr(track, "pre_encoded_codec", None) is not None


def h264_preferences() -> list[RTCRtpCodecCapability]:
    """Codec preferences for a transceiver sending pre-encoded H.264: 42e01f, then the other
    H.264 entries, then RTX. No VP8: a pre-encoded stream can be sent only as what it is."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
    h264.sort(key=lambda c: c.parameters.get("profile-level-id") != PROFILE_LEVEL_ID)
    return h264 + [c for c in codecs if c.mimeType.lower() == "video/rtx"]


def attach_sender(sender: RTCRtpSender, track: MediaStreamTrack | None = None) -> bool:
    """Route the far end's keyframe requests and bitrate estimates for `sender` to `track`
    (or, for a wrapper with a `source`, to whatever its source is at the time).

    Call it once per sender, right after `addTransceiver`/`addTrack`, for any track: it does
    nothing (and returns False) unless the track is pre-encoded. aiortc's sender keeps its
    own handling; this wraps its RTCP handler to also tell the track, and checks at `send()`
    that the negotiated codec is the track's (else the track is stopped with a clear error
    rather than sending H.264 bytes as VP8).
    """
    track = track if track is not None else sender.track
    if not is_pre_encoded(track) or getattr(sender, "_kioskd_attached", False):
        return False
    handle_rtcp = sender._handle_rtcp_packet
    send = sender.send

    def encoder() -> Any:
        # A wrapper (SwitchableTrack) may get a new source mid-call: a camera opened again.
        return getattr(track, "source", track)

    async def handle_rtcp_packet(packet: Any) -> None:
        await handle_rtcp(packet)
        if not isinstance(packet, RtcpPsfbPacket):
            return
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            encoder().request_keyframe()
        elif packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if sender._ssrc in ssrcs:
                encoder().bitrate_estimate(bitrate)

    async def checked_send(parameters: Any) -> None:
        codec = parameters.codecs[0] if parameters.codecs else None
        refused = getattr(track, "on_codec_refused", None)
        if codec is not None and codec.mimeType.lower() != "video/h264" and refused:
            # Our own offer had H.264 first, the far end chose another: the wrapper goes on
            # with the camera's frames for aiortc's encoder (LocalMedia opens them).
            log.info("the far end chose %s over H.264: the camera's frames go to aiortc's "
                     "encoder instead of the hardware stream", codec.mimeType)
            refused(codec.name)
        elif codec is None or codec.mimeType.lower() != "video/h264":
            name = codec.mimeType if codec is not None else "no codec"
            log.error("the far end refused H.264 (negotiated %s): the pre-encoded camera "
                      "sends nothing; offer H.264 or use video.encoder = \"software\"", name)
            if hasattr(track, "wait_for_replacement"):
                track.wait_for_replacement = False  # no camera opened again would fit either
            encoder().end(f"the far end refused H.264 (negotiated {name})")
            encoder().stop()
        await send(parameters)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
    sender.send = checked_send  # type: ignore[method-assign]
    sender._kioskd_attached = True  # type: ignore[attr-defined]
    return True
