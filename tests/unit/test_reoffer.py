"""A new aiortc connection's offer, reshaped like the session a browser negotiated with us."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, sdp

from kioskd.rtc.reoffer import ReofferError, media_kinds, shape_like

# What the kiosk answered to a Chromium offer (aiortc's answer keeps the browser's numbers):
# audio mid 0 with Opus 111, video mid 1 with VP8 96 (RTX 97) and H264 102 (RTX 103); the
# browser's header extension IDs.
NEGOTIATED = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "a=msid-semantic:WMS *",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=sendrecv",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", "a=mid:0", "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuv",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:active",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103", "c=IN IP4 0.0.0.0", "a=sendrecv",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", "a=mid:1", "a=rtcp-mux",
    "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    "a=rtpmap:102 H264/90000",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:103 rtx/90000", "a=fmtp:103 apt=102",
    "a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuv",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:active", "",
])


async def fresh_offer(kinds) -> str:
    pc = RTCPeerConnection()
    try:
        for kind in kinds:
            pc.addTransceiver(kind, direction="sendrecv")
        return (await pc.createOffer()).sdp
    finally:
        await pc.close()


def test_the_new_offer_takes_the_sessions_mids_payload_types_and_extension_ids():
    offer = asyncio.run(fresh_offer(media_kinds(NEGOTIATED)))
    shaped = sdp.SessionDescription.parse(shape_like(offer, NEGOTIATED))
    before = sdp.SessionDescription.parse(offer)
    audio, video = shaped.media
    assert [audio.rtp.muxId, video.rtp.muxId] == ["0", "1"]
    assert shaped.group[0].items == ["0", "1"]
    assert [(c.mimeType, c.payloadType) for c in audio.rtp.codecs] == [("audio/opus", 111)]
    assert audio.fmt == [111]
    video_codecs = [(c.mimeType, c.payloadType, c.parameters.get("apt"))
                    for c in video.rtp.codecs]
    assert ("video/VP8", 96, None) in video_codecs and ("video/rtx", 97, 96) in video_codecs
    assert ("video/H264", 102, None) in video_codecs and ("video/rtx", 103, 102) in video_codecs
    assert len(video_codecs) == 4  # nothing the browser did not agree to
    assert {(x.uri, x.id) for x in audio.rtp.headerExtensions} == {
        ("urn:ietf:params:rtp-hdrext:ssrc-audio-level", 1),
        ("urn:ietf:params:rtp-hdrext:sdes:mid", 4)}
    assert {(x.uri, x.id) for x in video.rtp.headerExtensions} == {
        ("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", 2),
        ("urn:ietf:params:rtp-hdrext:sdes:mid", 4)}
    # The new connection's own ICE credentials and fingerprint stay: an ICE restart.
    assert audio.ice.usernameFragment == before.media[0].ice.usernameFragment != "abcd"
    assert audio.dtls.fingerprints[0].value == before.media[0].dtls.fingerprints[0].value


def test_an_offer_that_does_not_line_up_is_refused_with_a_reason():
    offer = asyncio.run(fresh_offer(["audio"]))
    with pytest.raises(ReofferError, match="differ"):
        shape_like(offer, NEGOTIATED)
    with pytest.raises(ReofferError, match="not only audio and video"):
        media_kinds(NEGOTIATED.replace("m=video", "m=application"))
