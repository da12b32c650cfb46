"""Jitter buffers for the call's receivers, in place of aiortc's.

Video. aiortc's jitter buffer hands a video frame to the decoder only when the first packet of
the *next* frame arrives: it finds the end of a frame by the change of RTP timestamp. That holds
every frame back by one frame interval (42 ms at 24 fps, 33 ms at 30). Senders (browsers,
aiortc) set the RTP marker bit on the last packet of each video frame (RFC 7741 for VP8, RFC
6184 for H.264), so `MarkerJitterBuffer` releases a frame as soon as its packets are all in,
from the one after the previous frame's marker up to its own marker. Under loss it releases
only such complete frames: a hole waits for the retransmission that aiortc's NACK asks for.
aiortc sends that NACK once, when it sees the gap, and again only when another gap appears,
so the buffer repeats it every NACK_INTERVAL_S while the hole holds frames back (a lost
retransmission is asked for again). A hole still open after GIVE_UP_S is given up on: every
frame is then dropped until a keyframe comes, asked for with a PLI, so the decoder never
decodes past a missing reference.

Audio. aiortc's audio buffer (16 packets, 4 of look-ahead) waits for a lost packet until the
buffer is full, then drops the packets before the hole as well: one lost packet costs 100 ms
of sound and leaves 200 ms more delay for the rest of the call. `ConcealingJitterBuffer` keeps
the 4 packets (80 ms) of look-ahead, declares a packet lost when it is still missing then, and
for Opus hands the decoder a frame with no data in its place, which libopus decodes as 20 ms
of loss concealment (libopus treats a frame of length 0 or 1 as lost). aiortc's Opus decoder
(FFmpeg's libopus wrapper) cannot decode in-band FEC, so that is all the concealment there is.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

# aiortc's RTCRtpReceiver keeps its buffer in a private (name-mangled) attribute, made in
# __init__ before any packet can arrive; the sizes are aiortc's.
_RECEIVER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
VIDEO_CAPACITY = 512
AUDIO_CAPACITY = 16
AUDIO_LOOKAHEAD = 4  # packets: aiortc's audio prefetch
OPUS_MAX_SAMPLES = 5760  # 120 ms at 48 kHz, the longest an Opus packet may last

NACK_INTERVAL_S = 0.1  # a hole holding frames back is NACKed again this often
GIVE_UP_S = 0.3  # a hole that NACK has not filled by then is given up on
PLI_INTERVAL_S = 0.25  # keyframe requests no more often than this while waiting for one

_START_CODE = b"\x00\x00\x00\x01"  # aiortc's H.264 depayloader writes Annex B with these
_H264_IDR, _H264_SLICE = 5, 1


def is_keyframe(data: bytes) -> bool:
    """Whether an encoded frame is a whole keyframe from its first byte: a VP8 key frame
    (RFC 6386 section 9.1: frame tag bit 0 clear, then start code 9d 01 2a), or H.264 whose
    first slice is an IDR slice starting at macroblock 0 (a tail of a frame is not one)."""
    if data.startswith(_START_CODE):
        for nal in data.split(_START_CODE)[1:]:
            if len(nal) >= 2 and nal[0] & 0x1F in (_H264_SLICE, _H264_IDR):
                # first_mb_in_slice is ue(v) first in the slice header: 0 is a single 1 bit
                return nal[0] & 0x1F == _H264_IDR and bool(nal[1] & 0x80)
        return False
    return len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"


def _extend(sequence_number: int, highest: int | None) -> int:
    """The sequence number unwrapped to the one nearest `highest` (across 65535 -> 0)."""
    if highest is None:
        return sequence_number
    return highest + (sequence_number - highest + 0x8000) % 0x10000 - 0x8000


class MarkerJitterBuffer:
    """The video receiver's buffer: aiortc's contract, `add(packet) -> (pli, frame or None)`,
    where pli asks aiortc's receiver to send a picture loss indication.
    `nack(media_ssrc, sequence_numbers)` sends a NACK. aiortc takes at most one frame per
    packet added, so when a retransmission completes several frames at once, the earlier
    ones go to `deliver(frame, payload_type)` (the receiver's decoder queue) and the last is
    returned; without `deliver` the others would leave one per later packet, and every frame
    after a filled hole would stay that many frames late for the rest of the call."""

    def __init__(self, capacity: int = VIDEO_CAPACITY,
                 clock: Callable[[], float] = time.monotonic,
                 nack: Callable[[int, list[int]], None] | None = None,
                 deliver: Callable[[JitterFrame, int], None] | None = None) -> None:
        self.capacity = capacity
        self._clock = clock
        self._nack = nack
        self._deliver = deliver
        self._last_nack = -math.inf
        self._packets: dict[int, RtpPacket] = {}  # by extended sequence number, all >= _next
        self._highest: int | None = None  # extended number of the newest packet
        self._next = 0  # where the next frame to release starts (set by the first packet)
        self._floor: int | None = None  # below it, released or given up on: late
        self._need_keyframe = True  # at the start, and after a hole was given up on
        self._blocked_since: float | None = None  # since when a hole holds frames back
        self._last_pli = -math.inf
        self.holes_given_up = 0
        self.frames_dropped = 0  # complete frames dropped while waiting for a keyframe

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        seq = _extend(packet.sequence_number, self._highest)
        if self._highest is None:
            self._next = self._highest = seq
        if self._floor is not None and seq < self._floor or seq in self._packets:
            return False, None  # late (its frame has gone) or a duplicate
        if seq <= self._highest - self.capacity:
            return False, None  # older than anything the buffer could hold
        pli = False
        if seq < self._next:
            self._next = seq  # reordered before the first packet seen: an earlier start
        elif seq - self._next >= self.capacity:
            self._drop_below(seq - self.capacity + 1)  # full of frames that cannot complete
            pli = self._give_up(now)
        self._packets[seq] = packet
        self._highest = max(self._highest, seq)
        pli, ready = self._release(packet, now, pli)
        if not ready:
            return pli, None
        if self._deliver is not None:
            for frame in ready[:-1]:
                self._deliver(frame, packet.payload_type)
        return pli, ready[-1]

    def _release(self, packet: RtpPacket, now: float, pli: bool) -> tuple[bool, list[JitterFrame]]:
        """The complete frames that can leave now, in order (only the first without
        `deliver`), and whether to send a PLI."""
        ready: list[JitterFrame] = []
        while self._deliver is not None or not ready:
            packets = self._frame_at_next()
            if packets is not None:
                self._drop_below(self._next + len(packets))
                self._blocked_since = None
                # _data: the depayloaded payload, which aiortc's receiver sets on each packet.
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                if self._need_keyframe and not is_keyframe(data):
                    self.frames_dropped += 1  # it refers to a frame the decoder never had
                    pli = self._request_keyframe(now) or pli
                    continue
                self._need_keyframe = False
                ready.append(JitterFrame(data=data, timestamp=packets[0].timestamp))
                continue
            assert self._highest is not None  # a packet is in
            if len(self._packets) == self._highest - self._next + 1:
                break  # no hole: the frame is still arriving
            if self._blocked_since is None:
                self._blocked_since = self._last_nack = now  # aiortc NACKed it just now
            if now - self._blocked_since < GIVE_UP_S:
                if now - self._last_nack >= NACK_INTERVAL_S and self._nack is not None:
                    self._last_nack = now
                    self._nack(packet.ssrc, self._missing())
                break  # waiting for the retransmission
            self._drop_below(self._first_after_hole())
            pli = self._give_up(now) or pli
        return pli, ready

    def _frame_at_next(self) -> list[RtpPacket] | None:
        """The packets of the frame starting at _next if they are all in, else None."""
        packets: list[RtpPacket] = []
        seq = self._next
        while (packet := self._packets.get(seq)) is not None:
            if packets and packet.timestamp != packets[0].timestamp:
                return packets  # ended without a marker: aiortc's rule
            packets.append(packet)
            if packet.marker:
                return packets
            seq += 1
        return None

    def _missing(self) -> list[int]:
        assert self._highest is not None  # a packet is in
        return [seq % 0x10000 for seq in range(self._next, self._highest)
                if seq not in self._packets]

    def _first_after_hole(self) -> int:
        seq = self._next
        while seq in self._packets:
            seq += 1
        while seq not in self._packets:
            seq += 1
        return seq

    def _drop_below(self, seq: int) -> None:
        for dropped in range(self._next, seq):
            self._packets.pop(dropped, None)
        self._next = self._floor = seq

    def _give_up(self, now: float) -> bool:
        log.debug("video: a hole was given up on; waiting for a keyframe")
        self.holes_given_up += 1
        self._need_keyframe = True
        self._blocked_since = None
        return self._request_keyframe(now)

    def _request_keyframe(self, now: float) -> bool:
        if now - self._last_pli < PLI_INTERVAL_S:
            return False
        self._last_pli = now
        return True


def opus_samples(data: bytes) -> int:
    """Samples at 48 kHz in an Opus packet, from its table-of-contents byte (RFC 6716 3.1);
    0 if there is none."""
    if not data:
        return 0
    config = data[0] >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        per_frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        per_frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        per_frame = (120, 240, 480, 960)[config % 4]
    code = data[0] & 3
    if code == 0:
        return per_frame
    if code in (1, 2):
        return 2 * per_frame
    return per_frame * (data[1] & 0x3F) if len(data) > 1 else 0


class ConcealingJitterBuffer:
    """The audio receiver's buffer, one packet per frame: the packet at the head leaves once
    the one AUDIO_LOOKAHEAD later is in. If the head is still missing then, it is lost: an
    Opus stream gets the next packet with a frame of no data put before it for each packet
    lost, which libopus decodes as concealment of that length (a code 3 packet, RFC 6716
    section 3.2.5). One packet out for the lost ones and the next: aiortc's receiver takes at
    most one frame per packet in, so a concealment of its own would add 20 ms of delay at
    each loss. Other codecs, or a next packet of several frames, just go on after the hole."""

    def __init__(self, capacity: int = AUDIO_CAPACITY, lookahead: int = AUDIO_LOOKAHEAD) -> None:
        self.capacity = capacity
        self._lookahead = lookahead
        self._packets: dict[int, RtpPacket] = {}
        self._highest: int | None = None
        self._next = 0
        self._started = False  # a packet has left: from then on, earlier ones are late
        self._last: tuple[int, RtpPacket] | None = None  # the last packet that left
        self.concealed = 0  # packets lost and concealed
        self.skipped = 0  # packets lost and not concealed

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = _extend(packet.sequence_number, self._highest)
        if self._highest is None:
            self._next = self._highest = seq
        if (self._started and seq < self._next) or seq in self._packets:
            return False, None  # too late to play, or a duplicate
        self._next = min(self._next, seq)
        self._packets[seq] = packet
        self._highest = max(self._highest, seq)
        if self._highest - self._next >= self.capacity:  # a jump: keep only the look-ahead
            for dropped in range(self._next, self._highest - self._lookahead):
                self._packets.pop(dropped, None)
            self._next = self._highest - self._lookahead
        if self._highest - self._next < self._lookahead:
            return False, None
        # The newest packet is always in, so there is a next one after any hole.
        lost = 0
        while self._next + lost not in self._packets:
            lost += 1
        seq = self._next + lost
        found = self._packets.pop(seq)
        data: bytes = found._data  # type: ignore[attr-defined]
        self._next, self._started = seq + 1, True
        previous, self._last = self._last, (seq, found)
        samples = opus_samples(data)
        if lost and previous is not None and data[0] & 3 == 0 \
                and (lost + 1) * samples <= OPUS_MAX_SAMPLES:
            last_seq, last = previous
            # Timestamps that step by the Opus packet's length: Opus (G.711 and G.722 step
            # by 160 per 20 ms, which no Opus packet lasts).
            if (found.timestamp - last.timestamp) % (1 << 32) == (seq - last_seq) * samples:
                self.concealed += lost
                timestamp = (found.timestamp - lost * samples) % (1 << 32)
                # code 3, variable sizes, lost + 1 frames: `lost` of size 0, then the packet's
                merged = bytes([data[0] | 3, 0x80 | (lost + 1), *bytes(lost)]) + data[1:]
                return False, JitterFrame(data=merged, timestamp=timestamp)
        self.skipped += lost
        return False, JitterFrame(data=data, timestamp=found.timestamp)


def _install(receiver: Any, buffer: Any, what: str) -> bool:
    current = getattr(receiver, _RECEIVER_ATTRIBUTE, None)
    if not isinstance(current, JitterBuffer):
        log.warning("this aiortc has no %s: %s", _RECEIVER_ATTRIBUTE, what)
        return False
    setattr(receiver, _RECEIVER_ATTRIBUTE, buffer)
    return True


def release_frames_on_marker(receiver: Any) -> bool:
    """Give a video `RTCRtpReceiver` the MarkerJitterBuffer. Call it before packets arrive
    (right after addTransceiver). False, and a warning, if this aiortc keeps its buffer
    elsewhere: the receiver then keeps aiortc's own, one frame slower."""
    return _install(receiver, MarkerJitterBuffer(nack=nack_sender(receiver),
                                                 deliver=frame_deliverer(receiver)),
                    "video frames leave its jitter buffer one frame late")


def frame_deliverer(receiver: Any) -> Callable[[JitterFrame, int], None] | None:
    """Hand an encoded frame to the receiver's decoder thread as its `_handle_rtp_packet`
    does with the frame `add` returns; None if this aiortc keeps them elsewhere."""
    try:
        decoder_queue = receiver._RTCRtpReceiver__decoder_queue
        timestamps = receiver._RTCRtpReceiver__timestamp_mapper
        codecs = receiver._RTCRtpReceiver__codecs
    except AttributeError:
        log.warning("this aiortc keeps its decoder queue elsewhere: after a retransmission, "
                    "video stays late by the frames it held back")
        return None

    def deliver(frame: JitterFrame, payload_type: int) -> None:
        codec = codecs.get(payload_type)
        if codec is None or receiver._RTCRtpReceiver__decoder_thread is None:
            return  # not started, or stopped
        frame.timestamp = timestamps.map(frame.timestamp)
        decoder_queue.put((codec, frame))
    return deliver


def nack_sender(receiver: Any) -> Callable[[int, list[int]], None]:
    """Send a NACK the way the receiver's own NACK generator does."""
    sending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def nack(media_ssrc: int, lost: list[int]) -> None:
        task = asyncio.ensure_future(receiver._send_rtcp_nack(media_ssrc, lost))
        sending.add(task)
        task.add_done_callback(sending.discard)
    return nack


def conceal_lost_audio(receiver: Any) -> bool:
    """Give an audio `RTCRtpReceiver` the ConcealingJitterBuffer (as above)."""
    return _install(receiver, ConcealingJitterBuffer(),
                    "a lost audio packet costs 100 ms of sound")
