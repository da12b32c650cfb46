"""The receivers' jitter buffers: a video frame leaves at its marker packet, not one frame
later, and never with a hole in it; a lost audio packet is concealed, not a stall."""

from __future__ import annotations

import fractions
import heapq
import random

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
)

from kioskd.rtc import jitter
from kioskd.rtc.jitter import (
    ConcealingJitterBuffer,
    MarkerJitterBuffer,
    conceal_lost_audio,
    is_keyframe,
    opus_samples,
    release_frames_on_marker,
)

KEY = b"\x50\x02\x00\x9d\x01\x2a"  # a VP8 key frame's first bytes (tag bit 0 clear)
INTER = b"\x31\x02\x00"  # a VP8 inter frame's (tag bit 0 set)


def packet(seq: int, timestamp: int, data: bytes, marker: bool = False) -> RtpPacket:
    p = RtpPacket(sequence_number=seq % 65536, timestamp=timestamp, marker=int(marker))
    p._data = data  # what aiortc's receiver sets: the depayloaded bytes
    return p


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(buffer, packets: list[RtpPacket], clock: Clock | None = None, step: float = 0.0):
    """(index of the packet that released it, frame data, timestamp) for each frame out, and
    the indexes of the packets whose add asked for a keyframe."""
    out, plis = [], []
    for index, p in enumerate(packets):
        if clock is not None:
            clock.now += step
        pli, frame = buffer.add(p)
        if frame is not None:
            out.append((index, frame.data, frame.timestamp))
        if pli:
            plis.append(index)
    return out, plis


def frames_out(buffer, packets, clock=None, step=0.0) -> list[bytes]:
    return [data for _, data, _ in feed(buffer, packets, clock, step)[0]]


FRAMES = [packet(10, 3000, KEY + b"a1"), packet(11, 3000, b"a2"), packet(12, 3000, b"a3", True),
          packet(13, 6750, INTER + b"b1"), packet(14, 6750, b"b2", True),
          packet(15, 10500, INTER + b"c1", True)]
A, B, C = KEY + b"a1a2a3", INTER + b"b1b2", INTER + b"c1"


def stream(first_seq: int, frames: list[tuple[bytes, int]], ts_step: int = 3750):
    """Packets of frames given as (first packet's data, packet count); keyframes by data."""
    packets, seq = [], first_seq
    for index, (head, count) in enumerate(frames):
        for part in range(count):
            data = head if part == 0 else b"p%d.%d" % (index, part)
            packets.append(packet(seq, 3000 + index * ts_step, data, part == count - 1))
            seq += 1
    return packets


def test_a_frame_leaves_with_its_marker_packet():
    assert feed(MarkerJitterBuffer(), FRAMES)[0] == [(2, A, 3000), (4, B, 6750), (5, C, 10500)]


def test_aiortc_s_own_buffer_waits_for_the_next_frame():
    # What the kiosk's buffer improves on: each frame one packet of the next one late.
    assert feed(JitterBuffer(capacity=512, is_video=True), FRAMES)[0] == [
        (3, A, 3000), (5, B, 6750)]


def test_out_of_order_packets_wait_for_the_missing_one():
    packets = [FRAMES[0], FRAMES[2], FRAMES[1], *FRAMES[3:5]]
    assert feed(MarkerJitterBuffer(), packets)[0] == [(2, A, 3000), (4, B, 6750)]


def test_reordering_across_frames_keeps_the_order():
    packets = [*FRAMES[:2], FRAMES[3], FRAMES[4], FRAMES[2], FRAMES[5]]
    out = feed(MarkerJitterBuffer(), packets)[0]
    assert out == [(4, A, 3000), (5, B, 6750)]  # B waits for A; then C comes one packet later


def test_without_markers_it_behaves_as_aiortc():
    packets = [packet(10, 3000, KEY + b"a1"), packet(11, 3000, b"a2"),
               packet(12, 6750, INTER + b"b1"), packet(13, 10500, INTER + b"c1")]
    assert feed(MarkerJitterBuffer(), packets)[0] == feed(
        JitterBuffer(capacity=512, is_video=True), packets)[0] == [
        (2, KEY + b"a1a2", 3000), (3, INTER + b"b1", 6750)]


def test_a_late_packet_of_a_released_frame_is_ignored():
    packets = [*FRAMES[:3], packet(11, 3000, b"a2 again"), *FRAMES[3:5]]
    assert feed(MarkerJitterBuffer(), packets)[0] == [(2, A, 3000), (5, B, 6750)]


@pytest.mark.parametrize("lost", [3, 4, 5], ids=["first", "middle", "marker"])
def test_a_frame_with_a_lost_packet_waits_for_its_retransmission(lost):
    packets = stream(100, [(KEY, 3), (INTER, 3), (INTER, 2), (INTER, 1)])
    missing = packets.pop(lost)
    clock = Clock()
    buffer = MarkerJitterBuffer(clock=clock)
    assert frames_out(buffer, packets, clock, 0.03) == [KEY + b"p0.1p0.2"]  # nothing after it
    clock.now += 0.03
    pli, frame = buffer.add(missing)  # the retransmission, within GIVE_UP_S
    assert not pli and frame is not None and frame.data == INTER + b"p1.1p1.2"
    # Without a way to the decoder, the frames held behind it leave one per packet added, as
    # aiortc takes one at a time: every later frame is two frames late.
    assert frames_out(buffer, stream(109, [(INTER, 2), (INTER, 1)])) == [
        INTER + b"p2.1", INTER, INTER + b"p0.1"]


@pytest.mark.parametrize("lost", [3, 4, 5], ids=["first", "middle", "marker"])
def test_a_retransmission_releases_every_frame_it_completes_at_once(lost):
    packets = stream(100, [(KEY, 3), (INTER, 3), (INTER, 2), (INTER, 1)])
    missing = packets.pop(lost)
    delivered: list[tuple[bytes, int, int]] = []
    clock = Clock()
    buffer = MarkerJitterBuffer(clock=clock, deliver=lambda frame, pt: delivered.append(
        (frame.data, frame.timestamp, pt)))
    assert frames_out(buffer, packets, clock, 0.03) == [KEY + b"p0.1p0.2"]
    missing.payload_type = 96
    clock.now += 0.03
    pli, frame = buffer.add(missing)
    # The earlier frames go to the decoder first, in order; aiortc queues the returned one.
    assert delivered == [(INTER + b"p1.1p1.2", 6750, 96), (INTER + b"p2.1", 10500, 96)]
    assert not pli and frame is not None and (frame.data, frame.timestamp) == (INTER, 14250)
    # Nothing is left behind: the next frame leaves with its own marker.
    assert frames_out(buffer, stream(109, [(INTER, 1)])) == [INTER]
    assert len(delivered) == 2


@pytest.mark.parametrize("lost", [3, 4, 5], ids=["first", "middle", "marker"])
def test_a_hole_given_up_on_drops_frames_until_a_keyframe_and_asks_for_one(lost):
    frames = [(KEY, 3), (INTER, 3), (INTER, 2), (INTER, 1), (INTER, 2), (KEY, 3), (INTER, 1)]
    packets = stream(100, frames)
    packets.pop(lost)
    clock = Clock()
    buffer = MarkerJitterBuffer(clock=clock)
    out, plis = feed(buffer, packets, clock, jitter.GIVE_UP_S / 4)
    assert [data for _, data, _ in out] == [KEY + b"p0.1p0.2", KEY + b"p5.1p5.2", INTER]
    assert len(plis) == 1 and buffer.holes_given_up == 1
    assert plis[0] < out[1][0]  # asked for before the keyframe came
    assert buffer.frames_dropped == 3 + (lost != 5)  # frames 2, 3, 4 (and the tail of 1)


def test_a_retransmission_after_giving_up_is_ignored():
    packets = stream(100, [(KEY, 1), (INTER, 2), (INTER, 1), (INTER, 1)])
    missing = packets.pop(1)
    clock = Clock()
    buffer = MarkerJitterBuffer(clock=clock)
    assert frames_out(buffer, packets, clock, jitter.GIVE_UP_S) == [KEY]
    assert buffer.add(missing) == (False, None)


def test_the_sequence_number_wraps():
    frames = [(KEY, 3), (INTER, 3), (INTER, 2), (INTER, 1)]
    packets = stream(65533, frames)
    assert [p.sequence_number for p in packets] == [65533, 65534, 65535, 0, 1, 2, 3, 4, 5]
    assert len(frames_out(MarkerJitterBuffer(), packets)) == 4
    lost = packets.pop(3)  # seq 0, the first packet after the wrap
    buffer = MarkerJitterBuffer()
    assert len(frames_out(buffer, packets)) == 1
    assert frames_out(buffer, [lost, packet(6, 3000 + 4 * 3750, INTER, True)]) == [
        INTER + b"p1.1p1.2", INTER + b"p2.1", ]


def test_a_full_buffer_gives_up_on_its_hole_and_asks_for_a_keyframe():
    frames = [(KEY, 2)] + [(INTER, 4)] * 40 + [(KEY, 2), (INTER, 1)]
    packets = stream(100, frames)
    packets.pop(3)  # never recovered, and the clock never moves: only capacity decides
    clock = Clock()
    buffer = MarkerJitterBuffer(capacity=64, clock=clock)
    out, plis = feed(buffer, packets, clock, 0.0)
    assert [data for _, data, _ in out] == [KEY + b"p0.1", KEY + b"p41.1", INTER]
    assert plis and buffer.holes_given_up >= 1


def test_a_stream_whose_first_packets_were_lost_starts_at_a_keyframe():
    packets = stream(100, [(KEY, 3), (INTER, 2), (KEY, 2), (INTER, 1)])[1:]
    out, plis = feed(MarkerJitterBuffer(), packets)
    assert [data for _, data, _ in out] == [KEY + b"p2.1", INTER]
    assert plis == [1]  # the tail of the first frame is no keyframe: asked at once


def test_a_packet_reordered_before_the_first_one_seen_starts_the_frame():
    packets = stream(100, [(KEY, 3), (INTER, 1)])
    packets[0], packets[1] = packets[1], packets[0]
    assert frames_out(MarkerJitterBuffer(), packets) == [KEY + b"p0.1p0.2", INTER]


def test_under_random_loss_and_reordering_only_whole_decodable_frames_leave():
    """A sender answering PLIs, 5 % of packets lost (4 in 5 of them retransmitted 3 to 30
    packets later), 3 % of them a packet late, sequence numbers wrapping."""
    rng = random.Random(13)
    clock = Clock()
    buffer = MarkerJitterBuffer(clock=clock)
    wanted: dict[int, bytes] = {}  # timestamp -> the frame as sent
    keyframes: set[int] = set()
    in_flight: list[tuple[float, int, RtpPacket]] = []  # (due, sequence number, packet)
    released: list[int] = []  # timestamps
    plis = sent = 0
    keyframe_asked = False
    for index in range(1500):
        key, keyframe_asked = index % 150 == 0 or keyframe_asked, False
        timestamp = 3000 * index
        wanted[timestamp] = b""
        count = rng.randint(6, 16) if key else rng.randint(1, 6)
        for part in range(count):
            data = (KEY if key else INTER) if part == 0 else b"p%d.%d" % (index, part)
            p = packet(60000 + sent, timestamp, data, part == count - 1)
            wanted[timestamp] += data
            sent += 1
            if rng.random() < 0.05:
                if rng.random() < 0.2:
                    continue  # lost for good
                due = sent + rng.randint(3, 30)
            else:
                due = sent + (1.5 if rng.random() < 0.03 else 0)
            heapq.heappush(in_flight, (due, sent, p))
        if key:
            keyframes.add(timestamp)
        while in_flight and in_flight[0][0] <= sent:
            clock.now += 1 / 30 / 4
            pli, frame = buffer.add(heapq.heappop(in_flight)[2])
            if frame is not None:
                assert frame.data == wanted[frame.timestamp]  # never a frame with a hole
                released.append(frame.timestamp)
            if pli:
                plis += 1
                keyframe_asked = True
    assert released == sorted(released)
    # Never past a missing reference: the frame before, or a keyframe.
    for previous, timestamp in zip(released, released[1:], strict=False):
        assert timestamp == previous + 3000 or timestamp in keyframes
    print(f"{len(released)} of 1500 frames released, {plis} PLIs, "
          f"{buffer.holes_given_up} holes given up on")
    assert len(released) > 0.6 * 1500  # 993: a hole given up on costs GIVE_UP_S and a PLI
    assert plis and buffer.holes_given_up > 0


def test_keyframes_are_recognised():
    assert is_keyframe(KEY) and not is_keyframe(INTER) and not is_keyframe(b"p1.2")
    sps, pps = b"\x00\x00\x00\x01\x67\x42", b"\x00\x00\x00\x01\x68\xce"
    idr_first, idr_second = b"\x00\x00\x00\x01\x65\x88", b"\x00\x00\x00\x01\x65\x40"
    p_slice = b"\x00\x00\x00\x01\x41\x9a"
    assert is_keyframe(sps + pps + idr_first + idr_second)
    assert is_keyframe(idr_first)
    assert not is_keyframe(idr_second)  # the tail of a keyframe whose first slice was lost
    assert not is_keyframe(sps + pps + p_slice) and not is_keyframe(b"\x88\x84fragment")


VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


class FakeTransport:
    """What an RTCRtpReceiver needs of its DTLS transport to send RTCP."""

    state = "connected"

    def __init__(self) -> None:
        self.rtcp: list = []

    async def _send_rtp(self, data: bytes) -> None:
        self.rtcp += RtcpPacket.parse(data)


async def test_aiortc_s_receiver_nacks_holes_the_buffer_nacks_again_then_sends_its_pli():
    transport = FakeTransport()
    receiver = RTCRtpReceiver("video", transport)  # type: ignore[arg-type]
    receiver._RTCRtpReceiver__codecs[VP8.payloadType] = VP8  # what receive() would set
    receiver._set_rtcp_ssrc(1)
    clock = Clock()
    renacks: list[tuple[int, list[int]]] = []
    receiver._RTCRtpReceiver__jitter_buffer = MarkerJitterBuffer(
        clock=clock, nack=lambda ssrc, lost: renacks.append((ssrc, lost)))
    packets = stream(65530, [(KEY, 2), (INTER, 3), (INTER, 1), (INTER, 1), (INTER, 1),
                             (INTER, 1), (KEY, 1)])
    del packets[3]  # seq 65533
    for p in packets:
        p.payload_type, p.ssrc = VP8.payloadType, 5
        p.payload = (b"\x10" if p._data[:1] in (KEY[:1], INTER[:1]) else b"\x00") + p._data
        clock.now += jitter.NACK_INTERVAL_S
        await receiver._handle_rtp_packet(p, arrival_time_ms=0)
    nacks = [p for p in transport.rtcp if isinstance(p, RtcpRtpfbPacket)
             and p.fmt == RTCP_RTPFB_NACK]
    plis = [p for p in transport.rtcp if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_PLI]
    assert [(n.media_ssrc, n.lost) for n in nacks] == [(5, [65533])]  # aiortc's, at the gap
    assert renacks == [(5, [65533])] * 2  # the buffer's, until it gives up on the hole
    assert len(plis) == 1 and plis[0].media_ssrc == 5


async def test_frames_a_retransmission_completes_reach_the_receivers_decoder_in_order():
    transport = FakeTransport()
    receiver = RTCRtpReceiver("video", transport)  # type: ignore[arg-type]
    receiver._RTCRtpReceiver__codecs[VP8.payloadType] = VP8  # what receive() would set
    receiver._RTCRtpReceiver__decoder_thread = object()  # started, as receive() would
    receiver._set_rtcp_ssrc(1)
    assert release_frames_on_marker(receiver)
    packets = stream(200, [(KEY, 1), (INTER, 2), (INTER, 1), (INTER, 1)])
    missing = packets.pop(1)  # the second frame's first packet
    for p in [*packets, missing]:
        p.payload_type, p.ssrc = VP8.payloadType, 5
        p.payload = (b"\x10" if p._data[:1] in (KEY[:1], INTER[:1]) else b"\x00") + p._data
        await receiver._handle_rtp_packet(p, arrival_time_ms=0)
    queue = receiver._RTCRtpReceiver__decoder_queue
    queued = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(codec.payloadType, frame.timestamp) for codec, frame in queued] == [
        (VP8.payloadType, 0), (VP8.payloadType, 3750), (VP8.payloadType, 7500),
        (VP8.payloadType, 11250)]  # all four, in order, timestamps mapped from the first


async def test_the_receivers_of_this_aiortc_take_them():
    pc = RTCPeerConnection()
    try:
        video = pc.addTransceiver("video").receiver
        audio = pc.addTransceiver("audio").receiver
        assert release_frames_on_marker(video) and conceal_lost_audio(audio)
        assert isinstance(video._RTCRtpReceiver__jitter_buffer, MarkerJitterBuffer)
        assert video._RTCRtpReceiver__jitter_buffer._nack is not None  # NACKs holes again
        assert video._RTCRtpReceiver__jitter_buffer._deliver is not None  # no backlog
        assert isinstance(audio._RTCRtpReceiver__jitter_buffer, ConcealingJitterBuffer)
        assert not release_frames_on_marker(object())  # elsewhere: says so, keeps going
    finally:
        await pc.close()


# -- audio -------------------------------------------------------------------------------

OPUS_TOC = 0x78  # SILK wideband 20 ms, one frame: what browsers send for speech


def opus(seq: int, payload: bytes = b"x") -> RtpPacket:
    return packet(seq, 50_000 + 960 * (seq - 10), bytes([OPUS_TOC]) + payload)


def audio_out(buffer, packets) -> list[tuple[int, bytes, int]]:
    return feed(buffer, packets)[0]


def test_audio_leaves_four_packets_behind_the_newest_as_with_aiortc():
    packets = [opus(seq) for seq in range(10, 20)]
    ours = audio_out(ConcealingJitterBuffer(), packets)
    assert ours == audio_out(JitterBuffer(capacity=16, prefetch=4), packets)
    assert [index for index, _, _ in ours] == [4, 5, 6, 7, 8, 9]


def test_a_lost_audio_packet_is_concealed_in_its_place():
    packets = [opus(seq) for seq in range(10, 40) if seq != 15]
    buffer = ConcealingJitterBuffer()
    out = audio_out(buffer, packets)
    assert [index for index, _, _ in out] == list(range(4, 29))  # one a packet: no added delay
    assert [(ts - 50_000) // 960 for _, _, ts in out] == [*range(6), *range(7, 26)]
    # The lost one and the next together: code 3, VBR, 2 frames, the first of no data.
    assert out[5][1] == bytes([OPUS_TOC | 3, 0x82, 0]) + b"x"
    assert buffer.concealed == 1 and buffer.skipped == 0
    # aiortc's own: the 4 packets before the hole go too, then 14 packets (280 ms) of nothing,
    # and the delay stays 200 ms longer
    theirs = audio_out(JitterBuffer(capacity=16, prefetch=4), packets)
    assert [(index, (ts - 50_000) // 960) for index, _, ts in theirs[:3]] == [
        (4, 0), (19, 6), (20, 7)]


def test_two_lost_audio_packets_in_a_row_are_concealed_together():
    packets = [opus(seq) for seq in range(10, 30) if seq not in (15, 16)]
    buffer = ConcealingJitterBuffer()
    out = audio_out(buffer, packets)
    assert out[5][1] == bytes([OPUS_TOC | 3, 0x83, 0, 0]) + b"x"
    assert (out[5][2] - 50_000) // 960 == 5 and (out[6][2] - 50_000) // 960 == 8
    assert buffer.concealed == 2


def test_reordered_audio_within_the_lookahead_loses_nothing():
    packets = [opus(seq) for seq in range(10, 30)]
    packets[6], packets[8] = packets[8], packets[6]
    buffer = ConcealingJitterBuffer()
    assert [ts for _, _, ts in audio_out(buffer, packets)] == [
        50_000 + 960 * i for i in range(16)]
    assert buffer.concealed == 0


def test_a_late_audio_packet_is_dropped():
    packets = [opus(seq) for seq in range(10, 30)]
    packets.insert(12, opus(13, b"late"))
    del packets[3]
    buffer = ConcealingJitterBuffer()
    out = audio_out(buffer, packets)
    assert buffer.concealed == 1 and not any(data.endswith(b"late") for _, data, _ in out)


def test_other_audio_codecs_skip_a_lost_packet_without_concealment():
    packets = [packet(seq, 160 * seq, b"\xff" * 160) for seq in range(10, 30) if seq != 15]
    buffer = ConcealingJitterBuffer()
    out = audio_out(buffer, packets)
    assert all(data == b"\xff" * 160 for _, data, _ in out)
    assert buffer.concealed == 0 and buffer.skipped == 1


def test_the_opus_packet_length_comes_from_its_toc():
    assert opus_samples(bytes([OPUS_TOC])) == 960
    assert opus_samples(bytes([0xFC])) == 960  # CELT fullband 20 ms
    assert opus_samples(bytes([0x79])) == 1920  # two 20 ms frames
    assert opus_samples(bytes([0x7B, 0x03])) == 2880  # code 3: three frames
    assert opus_samples(b"") == 0


def test_libopus_decodes_the_concealment_and_the_next_packet():
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                                  payloadType=111)
    encoder, decoder = get_encoder(codec), get_decoder(codec)
    payloads = []
    for i in range(8):
        tone = (np.sin(np.arange(960) * 0.05 + i * 48) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads += encoder.encode(frame)[0]
    packets = [packet(seq, seq * 960, data) for seq, data in enumerate(payloads)]
    del packets[4]
    buffer = ConcealingJitterBuffer(lookahead=1)
    decoded = []
    for p in packets:
        _, frame = buffer.add(p)
        if frame is not None:
            decoded += decoder.decode(frame)
    assert buffer.concealed == 1
    assert [(f.pts, f.samples) for f in decoded] == [
        (0, 960), (960, 960), (1920, 960), (2880, 960), (3840, 1920), (5760, 960)]
    concealed = decoded[4].to_ndarray().reshape(-1, 2)[:960]
    assert np.abs(concealed).mean() > 500  # the tone carries on through the loss, not silence
