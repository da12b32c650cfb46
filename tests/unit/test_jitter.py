"""The video jitter buffer releases a frame at its marker packet, not one frame later."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from kioskd.rtc.jitter import MarkerJitterBuffer, release_frames_on_marker


def packet(seq: int, timestamp: int, data: bytes, marker: bool = False) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = data  # what aiortc's receiver sets: the depayloaded bytes
    return p


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes, int]]:
    """(index of the packet that released it, frame data, timestamp) for each frame out."""
    out = []
    for index, p in enumerate(packets):
        _, frame = buffer.add(p)
        if frame is not None:
            out.append((index, frame.data, frame.timestamp))
    return out


FRAMES = [packet(10, 3000, b"a1"), packet(11, 3000, b"a2"), packet(12, 3000, b"a3", True),
          packet(13, 6750, b"b1"), packet(14, 6750, b"b2", True),
          packet(15, 10500, b"c1", True)]


def test_a_frame_leaves_with_its_marker_packet():
    assert feed(MarkerJitterBuffer(), FRAMES) == [
        (2, b"a1a2a3", 3000), (4, b"b1b2", 6750), (5, b"c1", 10500)]


def test_aiortc_s_own_buffer_waits_for_the_next_frame():
    # What the kiosk's buffer improves on: each frame one packet of the next one late.
    assert feed(JitterBuffer(capacity=512, is_video=True), FRAMES) == [
        (3, b"a1a2a3", 3000), (5, b"b1b2", 6750)]


def test_out_of_order_packets_wait_for_the_missing_one():
    packets = [packet(10, 3000, b"a1"), packet(12, 3000, b"a3", True),
               packet(11, 3000, b"a2"), packet(13, 6750, b"b1", True)]
    assert feed(MarkerJitterBuffer(), packets) == [(2, b"a1a2a3", 3000), (3, b"b1", 6750)]


def test_without_markers_it_behaves_as_aiortc():
    packets = [packet(10, 3000, b"a1"), packet(11, 3000, b"a2"), packet(12, 6750, b"b1"),
               packet(13, 10500, b"c1")]
    assert feed(MarkerJitterBuffer(), packets) == feed(
        JitterBuffer(capacity=512, is_video=True), packets) == [
        (2, b"a1a2", 3000), (3, b"b1", 6750)]


def test_a_late_packet_of_a_released_frame_is_ignored():
    packets = [*FRAMES[:3], packet(11, 3000, b"a2 again"), *FRAMES[3:5]]
    assert feed(MarkerJitterBuffer(), packets) == [(2, b"a1a2a3", 3000), (5, b"b1b2", 6750)]


async def test_the_receiver_of_this_aiortc_takes_it():
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video").receiver
        assert release_frames_on_marker(receiver)
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, MarkerJitterBuffer)
        assert not release_frames_on_marker(object())  # elsewhere: says so, keeps going
    finally:
        await pc.close()
