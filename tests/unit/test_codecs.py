"""Video codec choice: a preference orders, never refuses (rtc/codecs.py), on real aiortc SDP."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription as ParsedSdp

from kioskd.rtc.codecs import (
    codec_preferences,
    common_video_codecs,
    reject_video,
    rejected_video_answer,
)
from tests.support.caller import only_codecs


def _names(preferences) -> list[str]:
    return [f"{c.name}/{c.parameters.get('profile-level-id')}" if c.name == "H264" else c.name
            for c in preferences]


def test_preferences_put_the_configured_codecs_first_and_keep_the_others():
    assert _names(codec_preferences("video", ["H264"])) == [
        "H264/42e01f", "H264/42001f", "VP8", "rtx"]
    assert _names(codec_preferences("video", ["VP8", "H264"])) == [
        "VP8", "H264/42e01f", "H264/42001f", "rtx"]
    assert _names(codec_preferences("video", []))[-1] == "rtx"
    assert len(codec_preferences("video", ["AV1"])) == 4  # an unknown name refuses nothing


async def _offer(codecs: list[str] | None = None, audio: bool = True) -> str:
    pc = RTCPeerConnection()
    try:
        if audio:
            pc.addTransceiver("audio")
        video = pc.addTransceiver("video")
        if codecs is not None:
            video.setCodecPreferences(only_codecs(codecs))
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_common_codecs_as_aiortc_matches_them():
    assert common_video_codecs(await _offer(["VP8"])) == ["VP8"]
    assert common_video_codecs(await _offer(["H264/42001f"])) == ["H264"]
    assert common_video_codecs(await _offer()) == ["VP8", "H264"]
    vp9 = (await _offer(["VP8"])).replace(" VP8/90000", " VP9/90000")
    assert common_video_codecs(vp9) == []


@pytest.mark.parametrize("fmtp, usable", [
    ("profile-level-id=42e01f;packetization-mode=1", True),
    ("profile-level-id=42001f;packetization-mode=1", True),
    ("profile-level-id=42e034;packetization-mode=1", True),  # any level
    ("profile-level-id=42e01f;packetization-mode=0", False),  # aiortc: mode 1 only
    ("profile-level-id=640c1f;packetization-mode=1", False),  # Constrained High
    ("profile-level-id=64001f;packetization-mode=1", False),  # High
])
async def test_which_h264_offers_aiortc_can_answer(fmtp, usable):
    offer = await _offer(["H264/42e01f"])
    offer = re.sub(r"(a=fmtp:\d+ )[^\r\n]*profile-level-id[^\r\n]*", lambda m: m.group(1) + fmtp,
                   offer)
    assert (common_video_codecs(offer) == ["H264"]) is usable


async def test_a_rejected_video_line_goes_back_into_the_answer_in_its_place():
    offer = await _offer(["VP8"])
    offer = offer.replace(" VP8/90000", " VP9/90000")
    audio_only, removed = reject_video(offer)
    assert "m=video" not in audio_only and list(removed) == [1]
    assert re.search(r"a=group:BUNDLE 0\r\n", audio_only)
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        await pc.setRemoteDescription(RTCSessionDescription(audio_only, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = rejected_video_answer(pc.localDescription.sdp, removed)
    finally:
        await pc.close()
    media = ParsedSdp.parse(answer).media
    assert [(m.kind, m.port) for m in media][1] == ("video", 0)
    assert media[0].kind == "audio" and media[0].port != 0
    assert media[1].rtp.muxId == "1" and media[1].direction == "inactive"


def test_a_hardware_camera_gives_a_peer_without_h264_frames_to_encode():
    from kioskd.media.picamera2 import Picamera2Backend

    hardware = {"width": 1280, "height": 720, "fps": 30, "encode": "hardware",
                "bitrate": 2_000_000}
    assert Picamera2Backend.for_peer(hardware, ["VP8", "H264"]) == hardware
    assert Picamera2Backend.for_peer(hardware, ["VP8"]) == {
        "width": 640, "height": 480, "fps": 24, "encode": "software", "bitrate": None}
    assert Picamera2Backend.for_peer(hardware, [])["encode"] == "software"
    software = {**hardware, "encode": "software"}
    assert Picamera2Backend.for_peer(software, ["VP8"]) == software


def test_the_screen_says_a_call_is_audio_only():
    from kioskd.media.problems import FALLBACK, Problem
    from kioskd.ui.status_view import media_warnings

    problems = {"rtc.video_codecs": Problem(FALLBACK, "no video codec in common: audio only")}
    assert media_warnings("video", problems) == ("Audio only: no video codec in common",)
    assert media_warnings("video", {}) == ()
