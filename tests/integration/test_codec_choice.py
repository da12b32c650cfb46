"""Which video codec a call gets: the kiosk's preference orders, it never refuses a call.

Scripted aiortc callers stand in for browsers with fewer codecs: Firefox without OpenH264
(VP8 only), older iOS Safari and embedded clients (H.264 only), and a browser whose only video
codec the kiosk lacks (its offer's VP8 renamed VP9).
"""

from __future__ import annotations

import logging
import re

import pytest

from kioskd.call.states import State
from kioskd.media.picamera2 import Picamera2H264Track, Picamera2YuvTrack
from kioskd.ui.status_view import media_warnings
from tests.integration.conftest import connected_call, running_kiosk
from tests.support.caller import ScriptedCaller

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


def _answered_video(sdp: str) -> tuple[str, str]:
    """The answer's video codec (rtpmap) and its fmtp, for the first payload type."""
    video = sdp[sdp.index("m=video"):]
    payload = video.split("\r\n")[0].split()[3]
    rtpmap = re.search(rf"^a=rtpmap:{payload} ([^\r\n]+)", video, re.MULTILINE)
    fmtp = re.search(rf"^a=fmtp:{payload} ([^\r\n]+)", video, re.MULTILINE)
    return (rtpmap.group(1) if rtpmap else "", fmtp.group(1) if fmtp else "")


async def _caller(relay, **options) -> ScriptedCaller:
    caller = ScriptedCaller(relay.url, "alice-secret", **options)
    await caller.connect()
    return caller


async def _video_both_ways(kiosk, caller) -> None:
    await caller.sink.wait_for_frames(video=10, timeout=15)
    await kiosk.runner.media.sink.wait_for_frames(video=5, timeout=15)


async def test_a_kiosk_preferring_h264_answers_a_vp8_only_caller_with_vp8(relay):
    caller = await _caller(relay, video_codecs=["VP8"])  # Firefox without OpenH264
    try:
        async with running_kiosk(relay.url, 'rtc.video_codecs=["H264"]') as kiosk:
            await connected_call(kiosk, caller)
            assert _answered_video(caller.pc.remoteDescription.sdp)[0] == "VP8/90000"
            await _video_both_ways(kiosk, caller)
    finally:
        await caller.close()


async def test_hardware_camera_gives_a_vp8_only_caller_the_software_path(relay, fake_picamera2):
    caller = await _caller(relay, video_codecs=["VP8"])
    try:
        async with running_kiosk(relay.url, "video.source=picamera2", "video.encoder=hardware",
                                 "video.width=640", "video.height=480", "video.fps=24",
                                 'rtc.video_codecs=["H264", "VP8"]') as kiosk:
            await connected_call(kiosk, caller)
            assert _answered_video(caller.pc.remoteDescription.sdp)[0] == "VP8/90000"
            assert isinstance(kiosk.runner.local.tracks["video"].source, Picamera2YuvTrack)
            await _video_both_ways(kiosk, caller)
            await caller.hangup()
            await kiosk.wait_for_state(State.IDLE)

            # The next caller has H.264: the hardware stream again, decided per call.
            caller.video_codecs = None
            await connected_call(kiosk, caller)
            assert _answered_video(caller.pc.remoteDescription.sdp)[0] == "H264/90000"
            assert isinstance(kiosk.runner.local.tracks["video"].source, Picamera2H264Track)
            await _video_both_ways(kiosk, caller)
    finally:
        await caller.close()


@pytest.mark.parametrize("profile", ["42e01f", "42001f"])
async def test_an_h264_only_caller_gets_h264_from_a_kiosk_preferring_vp8(relay, profile):
    caller = await _caller(relay, video_codecs=[f"H264/{profile}"])
    try:
        async with running_kiosk(relay.url, 'rtc.video_codecs=["VP8"]') as kiosk:
            await connected_call(kiosk, caller)
            codec, fmtp = _answered_video(caller.pc.remoteDescription.sdp)
            assert codec == "H264/90000"
            assert f"profile-level-id={profile}" in fmtp and "packetization-mode=1" in fmtp
            await _video_both_ways(kiosk, caller)
    finally:
        await caller.close()


def _with_vp9_only_video(offer: str) -> str:
    """An audio offer with a video m-line added whose only codec is VP9 (which aiortc lacks),
    sharing the audio's transport, as a browser's bundled offer does."""
    session, audio = offer.split("m=audio", 1)
    shared = "".join(line + "\r\n" for line in ("m=audio" + audio).split("\r\n")
                     if line.startswith(("a=ice-ufrag", "a=ice-pwd", "a=fingerprint",
                                         "a=setup")))
    video = ("m=video 9 UDP/TLS/RTP/SAVPF 100\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
             "a=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:100 VP9/90000\r\n" + shared)
    session = re.sub(r"a=group:BUNDLE 0\r\n", "a=group:BUNDLE 0 1\r\n", session)
    return session + "m=audio" + audio + video


def _without_rejected_video(answer: str) -> str:
    """What the caller's browser does with the rejected line; the aiortc caller never had it."""
    return re.sub(r"m=video 0 [^\r\n]*\r\n(?:(?!m=)[^\r\n]*\r\n)*", "", answer)


async def test_no_video_codec_in_common_is_an_audio_call_not_a_refusal(relay, caplog):
    caller = await _caller(relay, edit_offer=_with_vp9_only_video,
                           edit_answer=_without_rejected_video)
    try:
        async with running_kiosk(relay.url) as kiosk:
            with caplog.at_level(logging.WARNING, logger="kioskd.rtc.session"):
                # The caller's connection has audio only; its offer says video, with VP9.
                await caller.call("kiosk", "audio", announce="video")
                data = await caller.receive_answer()
                video = data["answer"]["sdp"].split("m=video", 1)[1]
                assert video.startswith(" 0 ") and "a=mid:1" in video  # rejected, in place
                await kiosk.wait_for_state(State.CONNECTED)
            assert kiosk.runner.machine.state is State.CONNECTED
            assert any("no video codec in common" in r.getMessage() and "VP9" in r.getMessage()
                       for r in caplog.records)
            await caller.sink.wait_for_frames(audio=25, timeout=15)
            await kiosk.runner.media.sink.wait_for_frames(audio=25, timeout=15)
            notes = kiosk.status()["media_notices"]
            assert "audio only" in notes["rtc.video_codecs"]
            assert "Audio only: no video codec in common" in media_warnings(
                "video", kiosk.runner.local.problems.snapshot())
            await caller.hangup()
            await kiosk.wait_for_state(State.IDLE)
            assert "rtc.video_codecs" not in (kiosk.status()["media_notices"] or {})
    finally:
        await caller.close()


async def test_the_call_log_counts_the_frames_sent(relay):
    caller = await _caller(relay)
    try:
        async with running_kiosk(relay.url) as kiosk:
            await connected_call(kiosk, caller)
            await caller.sink.wait_for_frames(video=15, timeout=15)
            await caller.hangup()
            await kiosk.wait_for_state(State.IDLE)
            [call] = await kiosk.calllog.recorder.recent()
            assert call["frames_sent"] >= 15
            assert call["frames_received"] > 0
    finally:
        await caller.close()


def _offered_video(sdp: str) -> list[str]:
    video = sdp[sdp.index("m=video"):]
    return [name for name in re.findall(r"^a=rtpmap:\d+ ([^/\r\n]+)/", video, re.MULTILINE)
            if name != "rtx"]


async def test_the_kiosks_own_offer_has_every_codec_preferred_first(relay):
    callee = await _caller(relay, video_codecs=["VP8"])
    try:
        async with running_kiosk(relay.url, 'rtc.video_codecs=["H264"]') as kiosk:
            kiosk.place_call("alice")
            offer = await callee.answer_incoming()
            assert _offered_video(offer["offer"]["sdp"]) == ["H264", "H264", "VP8"]
            await kiosk.wait_for_state(State.CONNECTED)
            await _video_both_ways(kiosk, callee)
    finally:
        await callee.close()


async def test_hardware_camera_calling_a_vp8_only_callee_sends_through_the_software_path(
        relay, fake_picamera2):
    callee = await _caller(relay, video_codecs=["VP8"])
    try:
        async with running_kiosk(relay.url, "video.source=picamera2", "video.encoder=hardware",
                                 "video.width=640", "video.height=480", "video.fps=24",
                                 'rtc.video_codecs=["VP8"]') as kiosk:
            kiosk.place_call("alice")
            offer = await callee.answer_incoming()
            # The camera's own H.264 first, then the rest.
            assert _offered_video(offer["offer"]["sdp"]) == ["H264", "H264", "VP8"]
            await kiosk.wait_for_state(State.CONNECTED)
            await _video_both_ways(kiosk, callee)
            assert isinstance(kiosk.runner.local.tracks["video"].source, Picamera2YuvTrack)
            assert "video.source" not in (kiosk.status()["media_errors"] or {})
            await callee.hangup()
            await kiosk.wait_for_state(State.IDLE)

            callee.video_codecs = None  # a callee with H.264 gets the hardware stream
            kiosk.place_call("alice")
            await callee.answer_incoming()
            await kiosk.wait_for_state(State.CONNECTED)
            await _video_both_ways(kiosk, callee)
            assert isinstance(kiosk.runner.local.tracks["video"].source, Picamera2H264Track)
    finally:
        await callee.close()
