"""The pre-encoded H.264 track: access units in, av.Packets out, feedback to the encoder."""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from kioskd.media.h264 import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    PROFILE_LEVEL_ID,
    PreEncodedH264Track,
    attach_sender,
    h264_preferences,
    is_pre_encoded,
    nal_type,
    nal_units,
    profile_level_id,
)
from kioskd.media.measure import MeasuringSink
from kioskd.media.synthetic import SyntheticCamera, TestPattern, wall_clock_ms
from tests.support.waiting import wait_until

SPS = b"\x67\x42\xc0\x1f\xda\x02\x80\xbf\xe5\x84\x04"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33"
P = b"\x41\x9a\x21\x6c"
SC = b"\x00\x00\x00\x01"


def types_of(data: bytes) -> list[int]:
    return [nal_type(unit) for unit in nal_units(data)]


class X264Producer:
    """A camera with an encoder, like the Pi's: stamped frames, libx264 Baseline, Annex-B,
    SPS/PPS on every keyframe, pushed from its own thread in real time."""

    def __init__(self, track: PreEncodedH264Track, width: int = 320, height: int = 240,
                 fps: int = 30, gop: int = 600) -> None:
        self.track, self.fps = track, fps
        self.pattern = TestPattern(width, height)
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = fractions.Fraction(1, 1_000_000)
        codec.framerate = fractions.Fraction(fps)
        codec.bit_rate, codec.gop_size, codec.profile = 500_000, gop, "Baseline"
        codec.options = {"preset": "ultrafast", "tune": "zerolatency", "level": "31",
                         "forced-idr": "1", "x264-params": "scenecut=0"}
        self.codec = codec
        self.keyframes_requested = 0
        self.keyframes_made = 0
        self._forced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def force_key_frame(self) -> None:
        self.keyframes_requested += 1

    def start(self) -> X264Producer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start = time.monotonic()
        index = 0
        while not self._stop.wait(max(0.0, start + index / self.fps - time.monotonic())):
            frame = self.pattern.render(index, index, wall_clock_ms())
            frame.pts = round(index * 1_000_000 / self.fps)
            frame.time_base = self.codec.time_base
            if self.keyframes_requested > self._forced:
                self._forced = self.keyframes_requested
                frame.pict_type = av.video.frame.PictureType.I
            for packet in self.codec.encode(frame):
                self.keyframes_made += packet.is_keyframe
                self.track.push(bytes(packet), packet.pts)
            index += 1


# -- Annex-B parsing ------------------------------------------------------------------------


def test_nal_units_split_on_three_and_four_byte_start_codes():
    data = SC + SPS + b"\x00\x00\x01" + PPS + SC + IDR
    assert nal_units(data) == [SPS, PPS, IDR]
    assert types_of(data) == [NAL_SPS, NAL_PPS, NAL_IDR]
    assert nal_units(b"") == [] and nal_units(b"\x01\x02") == []


def test_profile_level_id_of_an_sps():
    assert profile_level_id(SPS) == "42c01f"
    with pytest.raises(ValueError):
        profile_level_id(PPS)


# -- the track ------------------------------------------------------------------------------


async def test_leading_non_key_frames_are_dropped_and_a_keyframe_requested():
    requests = []
    track = PreEncodedH264Track(on_keyframe_request=lambda: requests.append(1))
    track.push(SC + P, 0)
    track.push(SC + P, 33_333)
    track.push(SC + SPS + SC + PPS + SC + IDR, 66_667)
    track.push(SC + P, 100_000)

    first, second = await track.recv(), await track.recv()
    assert types_of(bytes(first)) == [NAL_SPS, NAL_PPS, NAL_IDR] and first.is_keyframe
    assert types_of(bytes(second)) == [1] and not second.is_keyframe
    assert track.counters["dropped_before_keyframe"] == 2
    assert requests == [1]  # two drops, one request (rate-limited)
    track.stop()


async def test_packets_have_90khz_timestamps_from_the_capture_time():
    track = PreEncodedH264Track()
    track.push(SC + SPS + SC + PPS + SC + IDR, 5_000_000)
    track.push(SC + P, 5_033_333)
    track.push(SC + P, 5_066_667)
    packets = [await track.recv() for _ in range(3)]
    assert [p.pts for p in packets] == [0, 2999, 6000]
    assert all(p.time_base == fractions.Fraction(1, 90000) for p in packets)
    track.stop()


async def test_a_clock_that_goes_back_does_not_make_pts_go_back():
    track = PreEncodedH264Track()
    track.push(SC + SPS + SC + PPS + SC + IDR, 1_000_000)
    track.push(SC + P, 1_033_333)
    track.push(SC + SPS + SC + PPS + SC + IDR, 0)  # an encoder restart
    track.push(SC + P, 33_333)
    pts = [(await track.recv()).pts for _ in range(4)]
    assert pts == sorted(pts) and len(set(pts)) == 4
    assert pts[3] - pts[2] == 2999
    track.stop()


async def test_sps_and_pps_are_put_before_a_keyframe_without_them():
    track = PreEncodedH264Track()
    track.push(SC + SPS + SC + PPS + SC + IDR)
    track.push(SC + P)
    track.push(SC + IDR)  # an encoder with repeat=False
    packets = [bytes(await track.recv()) for _ in range(3)]
    assert types_of(packets[2]) == [NAL_SPS, NAL_PPS, NAL_IDR]
    assert nal_units(packets[2]) == [SPS, PPS, IDR]
    assert track.counters["headers_inserted"] == 1
    track.stop()


async def test_a_keyframe_without_any_known_parameter_sets_is_not_sent():
    track = PreEncodedH264Track()
    track.push(SC + IDR)
    track.push(SC + P)
    track.push(SC + SPS + SC + PPS + SC + IDR)
    packet = await track.recv()
    assert types_of(bytes(packet)) == [NAL_SPS, NAL_PPS, NAL_IDR]
    assert track.counters["dropped_before_keyframe"] == 2
    track.stop()


async def test_overflow_drops_the_backlog_and_resumes_at_a_keyframe():
    requests = []
    track = PreEncodedH264Track(queue_size=3, on_keyframe_request=lambda: requests.append(1))
    track.push(SC + SPS + SC + PPS + SC + IDR, 0)
    for n in range(1, 6):  # nobody reads: the fourth access unit overflows
        track.push(SC + P, n * 33_333)
    assert track.stats()["queued"] == 0 and requests == [1]
    track.push(SC + SPS + SC + PPS + SC + IDR, 6 * 33_333)
    track.push(SC + P, 7 * 33_333)
    first, second = await track.recv(), await track.recv()
    assert first.is_keyframe and not second.is_keyframe
    assert first.pts == 6 * 3000 - 1  # the timeline kept going through the drop
    assert track.counters["dropped_overflow"] == 3 + 1  # 3 queued + the one that overflowed
    assert track.counters["dropped_before_keyframe"] == 2  # the P-frames after it
    track.stop()


async def test_a_push_from_another_thread_wakes_recv():
    track = PreEncodedH264Track()
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)
    assert not pending.done()
    threading.Thread(target=track.push, args=(SC + SPS + SC + PPS + SC + IDR,)).start()
    packet = await asyncio.wait_for(pending, 2)
    assert packet.is_keyframe
    track.stop()


async def test_stop_and_end_finish_recv():
    track = PreEncodedH264Track()
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 2)
    track.push(SC + SPS + SC + PPS + SC + IDR)  # ignored once stopped
    assert track.counters["access_units_in"] == 0

    ended = PreEncodedH264Track()
    ended.push(SC + SPS + SC + PPS + SC + IDR)
    ended.end()
    assert (await ended.recv()).is_keyframe  # what was queued still goes out
    with pytest.raises(MediaStreamError):
        await ended.recv()


def test_keyframe_requests_are_rate_limited_and_estimates_passed_on():
    requests, estimates = [], []
    track = PreEncodedH264Track(on_keyframe_request=lambda: requests.append(1),
                                on_bitrate_estimate=estimates.append)
    for _ in range(5):
        track.request_keyframe()
    track.bitrate_estimate(750_000)
    assert requests == [1] and estimates == [750_000]
    assert track.counters["keyframe_requests_in"] == 5
    assert track.stats()["last_bitrate_estimate"] == 750_000


def test_a_failing_encoder_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture):
    def refuse() -> None:
        raise OSError("encoder gone")

    track = PreEncodedH264Track(on_keyframe_request=refuse)
    with caplog.at_level(logging.ERROR, logger="kioskd.media.h264"):
        track.request_keyframe()
    assert "refused a keyframe request" in caplog.text


def test_session_helpers():
    assert is_pre_encoded(PreEncodedH264Track())
    assert not is_pre_encoded(SyntheticCamera(320, 240, 30)) and not is_pre_encoded(None)
    preferences = h264_preferences()
    assert preferences[0].mimeType == "video/H264"
    assert preferences[0].parameters["profile-level-id"] == PROFILE_LEVEL_ID
    assert {c.mimeType for c in preferences} == {"video/H264", "video/rtx"}


# -- through a real peer connection ---------------------------------------------------------


async def connect(track, prefer_h264: bool = True):
    """A sender pc with `track` (attached) and a receiver pc draining into a MeasuringSink."""
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sink = MeasuringSink()
    receiver_pc.on("track", sink.add_track)
    transceiver = sender_pc.addTransceiver(track, direction="sendonly")
    if prefer_h264:
        transceiver.setCodecPreferences(h264_preferences())
    assert attach_sender(transceiver.sender, track)
    assert not attach_sender(transceiver.sender, track)  # once is enough
    await sink.start()
    await sender_pc.setLocalDescription(await sender_pc.createOffer())
    await receiver_pc.setRemoteDescription(sender_pc.localDescription)
    await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
    await sender_pc.setRemoteDescription(receiver_pc.localDescription)
    return sender_pc, receiver_pc, transceiver.sender, sink


@pytest.mark.netns
async def test_pre_encoded_video_through_a_peer_connection_with_feedback():
    track = PreEncodedH264Track()
    producer = X264Producer(track, gop=600)
    track.on_keyframe_request = producer.force_key_frame
    estimates: list[int] = []
    track.on_bitrate_estimate = estimates.append
    sender_pc, receiver_pc, sender, sink = await connect(track)
    try:
        producer.start()
        await sink.wait_for_frames(video=30, timeout=15)
        assert "H264" in receiver_pc.remoteDescription.sdp
        stats = sink.stats()
        assert stats["video_size"] == [320, 240]
        assert stats["stamps_decoded"] >= 25  # the stamps survive the codec
        assert stats["latency_ms_p50"] < 500

        # A picture loss report from the receiver reaches the encoder as a keyframe request.
        keyframes = producer.keyframes_made
        receiver = receiver_pc.getTransceivers()[0].receiver
        await receiver._send_rtcp_pli(sender._ssrc)
        await wait_until(lambda: producer.keyframes_made > keyframes)
        assert producer.keyframes_requested >= 1
        assert track.counters["keyframe_requests_in"] >= 1

        # So does a bitrate estimate (REMB) naming this stream.
        remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1234, media_ssrc=0,
                              fci=pack_remb_fci(600_000, [sender._ssrc]))
        await receiver._send_rtcp(remb)
        await wait_until(lambda: 600_000 in estimates)

        frames = sink.video_frames
        await sink.wait_for_frames(video=frames + 10, timeout=5)  # still flowing
    finally:
        producer.stop()
        await sink.stop()
        await asyncio.gather(sender_pc.close(), receiver_pc.close())


@pytest.mark.netns
async def test_a_pre_encoded_track_negotiated_as_vp8_stops_with_a_clear_error(
    caplog: pytest.LogCaptureFixture,
):
    track = PreEncodedH264Track()
    producer = X264Producer(track)
    with caplog.at_level(logging.ERROR, logger="kioskd.media.h264"):
        sender_pc, receiver_pc, _, sink = await connect(track, prefer_h264=False)
        try:
            producer.start()
            await wait_until(lambda: track.readyState == "ended", timeout=10)
        finally:
            producer.stop()
            await sink.stop()
            await asyncio.gather(sender_pc.close(), receiver_pc.close())
    assert "refused H.264 (negotiated video/VP8)" in caplog.text
    assert sink.video_frames == 0
