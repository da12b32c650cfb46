"""Parsing and serialising PROTOCOL.md's events, including hostile payloads."""

import pytest

from kioskd import protocol as p

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"


def test_offer_from_browser_with_extra_fields_and_numeric_id():
    msg = p.parse(p.OFFER, {"offer": {"type": "offer", "sdp": SDP}, "type": "audio",
                            "from": 42, "fromUsername": "Alice\x07", "extra": [1, 2]})
    assert msg == p.Offer(42, p.SessionDescription("offer", SDP), "audio", "Alice", None)


def test_offer_type_defaults_to_video_and_call_id_is_kept():
    msg = p.parse(p.OFFER, {"offer": {"type": "offer", "sdp": SDP}, "from": "u1",
                            "callId": "abc"})
    assert msg.call_type == "video" and msg.call_id == "abc"


@pytest.mark.parametrize("payload,needle", [
    (None, "must be an object"),
    ("offer", "must be an object"),
    ({"offer": {"type": "offer", "sdp": SDP}}, "'from'"),
    ({"offer": {"type": "offer", "sdp": SDP}, "from": True}, "'from'"),
    ({"offer": {"type": "offer", "sdp": SDP}, "from": ["x"]}, "'from'"),
    ({"offer": {"type": "offer"}, "from": "a"}, "sdp"),
    ({"offer": {"type": "offer", "sdp": 5}, "from": "a"}, "sdp"),
    ({"offer": {"type": "offer", "sdp": ""}, "from": "a"}, "sdp"),
    ({"offer": "v=0", "from": "a"}, "must be an object"),
    ({"offer": {"type": "answer", "sdp": SDP}, "from": "a"}, "expected 'offer'"),
    ({"offer": {"type": "offer", "sdp": "hello"}, "from": "a"}, "v=0"),
    ({"offer": {"type": "offer", "sdp": "v=0" + "a" * p.MAX_SDP_CHARS}, "from": "a"}, "limit"),
    ({"offer": {"type": "offer", "sdp": SDP}, "from": "a", "type": "screen"}, "call type"),
    ({"offer": {"type": "offer", "sdp": SDP}, "from": "a", "callId": 7}, "callId"),
])
def test_malformed_offers_are_refused_with_a_clear_message(payload, needle):
    with pytest.raises(p.ProtocolError, match=needle):
        p.parse(p.OFFER, payload)


def test_candidates_browser_shapes():
    line = "candidate:1 1 udp 2122260223 127.0.0.2 5000 typ host generation 0 ufrag x"
    msg = p.parse(p.ICE_CANDIDATE, {"from": "a", "candidate": {
        "candidate": line, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "x"}})
    assert msg.candidate == p.IceCandidate(line, "0", 0)
    for end in (None, {"candidate": ""}, {"candidate": "", "sdpMid": None}):
        msg = p.parse(p.ICE_CANDIDATE, {"from": "a", "candidate": end})
        assert msg.candidate.is_end_of_candidates
    with pytest.raises(p.ProtocolError):
        p.parse(p.ICE_CANDIDATE, {"from": "a"})
    with pytest.raises(p.ProtocolError, match="sdpMLineIndex"):
        p.parse(p.ICE_CANDIDATE, {"from": "a", "candidate": {"candidate": line,
                                                             "sdpMLineIndex": -1}})
    with pytest.raises(p.ProtocolError, match="sdpMid"):
        p.parse(p.ICE_CANDIDATE, {"from": "a", "candidate": {"candidate": line,
                                                             "sdpMid": True}})
    with pytest.raises(p.ProtocolError, match="neither"):
        p.parse(p.ICE_CANDIDATE, {"from": "a", "candidate": {"candidate": line}})


def test_end_reject_timeout_and_reasons():
    assert p.parse(p.CALL_END, {"from": "a", "fromUsername": "A"}) == p.CallEnd("a", None, "A")
    assert p.parse(p.CALL_REJECT, {"from": "a", "reason": "busy"}).reason == "busy"
    assert p.parse(p.CALL_REJECT, {"from": "a", "reason": "weird"}).reason is None
    assert p.parse(p.CALL_TIMEOUT, {"from": "a"}) == p.CallTimeout("a")


def test_server_error():
    msg = p.parse(p.ERROR, {"code": "user-offline", "message": "gone", "to": 5})
    assert msg == p.ServerError("user-offline", "gone", 5)
    with pytest.raises(p.ProtocolError):
        p.parse(p.ERROR, {"message": "no code"})


def test_unknown_event():
    with pytest.raises(p.ProtocolError, match="unknown event"):
        p.parse("webrtc:dance", {})


def test_serialise_every_outgoing_message():
    desc = p.SessionDescription("answer", SDP)
    assert p.to_wire(p.Answer(7, desc, call_id="c")) == (
        p.ANSWER, {"to": 7, "answer": {"type": "answer", "sdp": SDP}, "callId": "c"})
    assert p.to_wire(p.Offer("u", p.SessionDescription("offer", SDP), "audio")) == (
        p.OFFER, {"to": "u", "offer": {"type": "offer", "sdp": SDP}, "type": "audio"})
    assert p.to_wire(p.CallReject("u", "busy")) == (p.CALL_REJECT, {"to": "u", "reason": "busy"})
    assert p.to_wire(p.CallEnd("u")) == (p.CALL_END, {"to": "u"})
    assert p.to_wire(p.CallTimeout("u", call_id="c")) == (p.CALL_TIMEOUT, {"to": "u", "callId": "c"})
    cand = p.IceCandidate("candidate:1 1 udp 1 1.2.3.4 1 typ host", "0", 0)
    assert p.to_wire(p.Candidate("u", cand))[1]["candidate"] == {
        "candidate": cand.candidate, "sdpMid": "0", "sdpMLineIndex": 0}


def test_round_trip_through_a_relay():
    """What we emit, relayed (to -> from), parses back to the same message."""
    for msg in (p.Offer("k", p.SessionDescription("offer", SDP), "video", call_id="1"),
                p.Answer("k", p.SessionDescription("answer", SDP), call_id="1"),
                p.CallEnd("k", "hangup", call_id="1"), p.CallReject("k", "declined"),
                p.CallTimeout("k")):
        event, payload = p.to_wire(msg)
        payload["from"] = payload.pop("to")
        assert p.parse(event, payload) == msg


def test_same_peer():
    assert p.same_peer(42, "42") and not p.same_peer(None, None) and not p.same_peer("a", "b")
