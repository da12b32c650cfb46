"""The web app's call protocol (PROTOCOL.md), parsed into typed messages and serialised back.

Pure: no I/O, no asyncio. Every payload from the network goes through `parse()`, which either
returns a frozen message or raises `ProtocolError` with one readable sentence. Extra fields are
tolerated; user ids may be strings or numbers (the web app uses both) and are kept as sent, so
that a reply addresses the peer exactly as the server knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OFFER = "webrtc:offer"
ANSWER = "webrtc:answer"
ICE_CANDIDATE = "webrtc:ice-candidate"
CALL_END = "webrtc:call-end"
CALL_REJECT = "webrtc:call-reject"
CALL_TIMEOUT = "webrtc:call-timeout"
ERROR = "webrtc:error"  # extension: server -> sender

# Events a client emits and a relay forwards (everything but the server's own error).
RELAYED_EVENTS = (OFFER, ANSWER, ICE_CANDIDATE, CALL_END, CALL_REJECT, CALL_TIMEOUT)
ALL_EVENTS = RELAYED_EVENTS + (ERROR,)

CALL_TYPES = ("video", "audio")
REASONS = ("declined", "busy", "unavailable", "policy", "timeout", "failed", "hangup")

# A browser's SDP for audio+video is 5-10 kB; anything near this is hostile or broken.
MAX_SDP_CHARS = 64 * 1024
MAX_CANDIDATE_CHARS = 1024
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256

PeerId = str | int


class ProtocolError(ValueError):
    """A payload that does not follow PROTOCOL.md. The message is one log-ready sentence."""


@dataclass(frozen=True)
class SessionDescription:
    type: str  # "offer" | "answer"
    sdp: str

    def to_wire(self) -> dict[str, str]:
        return {"type": self.type, "sdp": self.sdp}


@dataclass(frozen=True)
class IceCandidate:
    """A trickled candidate. `candidate` empty means end-of-candidates (to be ignored)."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None

    @property
    def is_end_of_candidates(self) -> bool:
        return not self.candidate

    def to_wire(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
        }


# -- messages --------------------------------------------------------------------------------
# `peer` is the other user: `from` on what we receive, `to` on what we send.


@dataclass(frozen=True)
class Offer:
    peer: PeerId
    description: SessionDescription
    call_type: str = "video"
    peer_name: str = ""
    call_id: str | None = None


@dataclass(frozen=True)
class Answer:
    peer: PeerId
    description: SessionDescription
    peer_name: str = ""
    call_id: str | None = None


@dataclass(frozen=True)
class Candidate:
    peer: PeerId
    candidate: IceCandidate
    call_id: str | None = None


@dataclass(frozen=True)
class CallEnd:
    peer: PeerId
    reason: str | None = None
    peer_name: str = ""
    call_id: str | None = None


@dataclass(frozen=True)
class CallReject:
    peer: PeerId
    reason: str | None = None
    peer_name: str = ""
    call_id: str | None = None


@dataclass(frozen=True)
class CallTimeout:
    peer: PeerId
    peer_name: str = ""
    call_id: str | None = None


@dataclass(frozen=True)
class ServerError:
    """`webrtc:error` from the server, e.g. code "user-offline" for an absent target."""

    code: str
    message: str = ""
    to: PeerId | None = None


Message = Offer | Answer | Candidate | CallEnd | CallReject | CallTimeout | ServerError
PeerMessage = Offer | Answer | Candidate | CallEnd | CallReject | CallTimeout

EVENT_OF: dict[type, str] = {
    Offer: OFFER,
    Answer: ANSWER,
    Candidate: ICE_CANDIDATE,
    CallEnd: CALL_END,
    CallReject: CALL_REJECT,
    CallTimeout: CALL_TIMEOUT,
    ServerError: ERROR,
}


def same_peer(a: PeerId | None, b: PeerId | None) -> bool:
    """User ids compare as text: the server may echo 42 for a "42" we sent, or the reverse."""
    return a is not None and b is not None and str(a) == str(b)


# -- validation helpers ----------------------------------------------------------------------


def _require_dict(payload: Any, event: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ProtocolError(f"{event}: payload must be an object, got {type(payload).__name__}")
    return payload


def parse_peer_id(value: Any, field: str, event: str) -> PeerId:
    # bool is an int subclass; a boolean user id is never valid.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ProtocolError(f"{event}: '{field}' must be a string or number user id")
    if isinstance(value, str) and not (0 < len(value) <= MAX_ID_CHARS):
        raise ProtocolError(f"{event}: '{field}' must be 1..{MAX_ID_CHARS} characters")
    return value


def _optional_str(payload: dict[str, Any], field: str, event: str, limit: int) -> str | None:
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{event}: '{field}' must be a string")
    if len(value) > limit:
        raise ProtocolError(f"{event}: '{field}' is longer than {limit} characters")
    return value


def _name(payload: dict[str, Any], event: str) -> str:
    # A display name is cosmetic: a wrong type is replaced, not fatal, and control characters
    # are removed because the name ends up on screen and in logs.
    value = payload.get("fromUsername")
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value[:MAX_NAME_CHARS] if ch.isprintable())


def _reason(payload: dict[str, Any], event: str) -> str | None:
    value = payload.get("reason")
    # Unknown reasons from newer peers are kept out rather than rejected: the event still counts.
    return value if isinstance(value, str) and value in REASONS else None


def _description(value: Any, expected_type: str, event: str) -> SessionDescription:
    if not isinstance(value, dict):
        raise ProtocolError(f"{event}: '{expected_type}' must be an object with 'type' and 'sdp'")
    sdp = value.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise ProtocolError(f"{event}: '{expected_type}.sdp' must be a non-empty string")
    if len(sdp) > MAX_SDP_CHARS:
        raise ProtocolError(
            f"{event}: SDP is {len(sdp)} characters, over the {MAX_SDP_CHARS} limit")
    if not sdp.startswith("v=0"):
        raise ProtocolError(f"{event}: SDP does not start with 'v=0'")
    kind = value.get("type", expected_type)
    if kind != expected_type:
        raise ProtocolError(f"{event}: description type is {kind!r}, expected {expected_type!r}")
    return SessionDescription(type=expected_type, sdp=sdp)


def _candidate(value: Any, event: str) -> IceCandidate:
    if value is None:
        return IceCandidate(candidate="")
    if isinstance(value, str):  # some apps send the bare candidate line
        value = {"candidate": value}
    if not isinstance(value, dict):
        raise ProtocolError(f"{event}: 'candidate' must be an object, a string or null")
    line = value.get("candidate")
    if line is None:
        line = ""
    if not isinstance(line, str):
        raise ProtocolError(f"{event}: 'candidate.candidate' must be a string")
    if len(line) > MAX_CANDIDATE_CHARS:
        raise ProtocolError(f"{event}: candidate is over {MAX_CANDIDATE_CHARS} characters")
    mid = value.get("sdpMid")
    if mid is not None and not isinstance(mid, (str, int)) or isinstance(mid, bool):
        raise ProtocolError(f"{event}: 'sdpMid' must be a string or null")
    index = value.get("sdpMLineIndex")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ProtocolError(f"{event}: 'sdpMLineIndex' must be a non-negative integer or null")
    if line and mid is None and index is None:
        raise ProtocolError(f"{event}: candidate names neither 'sdpMid' nor 'sdpMLineIndex'")
    return IceCandidate(
        candidate=line, sdp_mid=None if mid is None else str(mid), sdp_mline_index=index
    )


# -- parse / serialise -----------------------------------------------------------------------


def parse(event: str, payload: Any) -> Message:
    """Turn a received event into a message, or raise ProtocolError."""
    if event not in ALL_EVENTS:
        raise ProtocolError(f"unknown event {event!r}")
    data = _require_dict(payload, event)
    if event == ERROR:
        code = data.get("code")
        if not isinstance(code, str) or not code:
            raise ProtocolError(f"{event}: 'code' must be a non-empty string")
        message = data.get("message")
        to = data.get("to")
        return ServerError(
            code=code[:MAX_ID_CHARS],
            message=message[:1000] if isinstance(message, str) else "",
            to=parse_peer_id(to, "to", event) if to is not None else None,
        )

    peer = parse_peer_id(data.get("from"), "from", event)
    call_id = _optional_str(data, "callId", event, MAX_ID_CHARS)
    if event == OFFER:
        call_type = data.get("type", "video")
        if call_type not in CALL_TYPES:
            raise ProtocolError(f"{event}: call type {call_type!r} is not one of {CALL_TYPES}")
        return Offer(
            peer=peer,
            description=_description(data.get("offer"), "offer", event),
            call_type=call_type,
            peer_name=_name(data, event),
            call_id=call_id,
        )
    if event == ANSWER:
        return Answer(
            peer=peer,
            description=_description(data.get("answer"), "answer", event),
            peer_name=_name(data, event),
            call_id=call_id,
        )
    if event == ICE_CANDIDATE:
        if "candidate" not in data:
            raise ProtocolError(f"{event}: 'candidate' is missing")
        return Candidate(peer=peer, candidate=_candidate(data["candidate"], event), call_id=call_id)
    if event == CALL_END:
        return CallEnd(peer, _reason(data, event), _name(data, event), call_id)
    if event == CALL_REJECT:
        return CallReject(peer, _reason(data, event), _name(data, event), call_id)
    return CallTimeout(peer, _name(data, event), call_id)


def to_wire(message: PeerMessage) -> tuple[str, dict[str, Any]]:
    """The (event, payload) we emit for a message addressed to `message.peer`."""
    payload: dict[str, Any] = {"to": message.peer}
    if isinstance(message, Offer):
        payload["offer"] = message.description.to_wire()
        payload["type"] = message.call_type
    elif isinstance(message, Answer):
        payload["answer"] = message.description.to_wire()
    elif isinstance(message, Candidate):
        payload["candidate"] = message.candidate.to_wire()
    elif isinstance(message, (CallEnd, CallReject)) and message.reason:
        payload["reason"] = message.reason
    if message.call_id:
        payload["callId"] = message.call_id
    return EVENT_OF[type(message)], payload
