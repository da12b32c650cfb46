"""A video jitter buffer that lets a frame go as soon as its last packet is in.

aiortc's jitter buffer hands a video frame to the decoder only when the first packet of the
*next* frame arrives: it finds the end of a frame by the change of RTP timestamp. That holds
every frame back by one frame interval (42 ms at 24 fps, 33 ms at 30), on top of the network
and the decoder. Senders (browsers, aiortc) set the RTP marker bit on the last packet of each
video frame (RFC 7741 for VP8, RFC 6184 for H.264), so a frame whose packets are all in, up to
the one with the marker, is complete: this buffer releases it then. Without a marker it
behaves exactly as aiortc's does.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

# aiortc's RTCRtpReceiver keeps its buffer in a private (name-mangled) attribute, made in
# __init__ before any packet can arrive; the size is aiortc's for video.
_RECEIVER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
VIDEO_CAPACITY = 512


class MarkerJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int = VIDEO_CAPACITY) -> None:
        super().__init__(capacity=capacity, is_video=True)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        assert self._origin is not None  # aiortc calls this only once a packet is in
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                break  # a gap, or the frame ended without a marker: aiortc's rule decides
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                # _data: the depayloaded payload, which aiortc's receiver sets on each packet.
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=packets[0].timestamp)
        return super()._remove_frame(sequence_number)


def release_frames_on_marker(receiver: Any) -> bool:
    """Give a video `RTCRtpReceiver` the MarkerJitterBuffer. Call it before packets arrive
    (right after addTransceiver). False, and a warning, if this aiortc keeps its buffer
    elsewhere: the receiver then keeps aiortc's own, one frame slower."""
    current = getattr(receiver, _RECEIVER_ATTRIBUTE, None)
    if not isinstance(current, JitterBuffer):
        log.warning("this aiortc has no %s: video frames leave its jitter buffer one frame "
                    "late", _RECEIVER_ATTRIBUTE)
        return False
    setattr(receiver, _RECEIVER_ATTRIBUTE, MarkerJitterBuffer(current.capacity))
    return True
