"""What the call machine is told (events) and what it asks for (effects). Plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import protocol
from ..protocol import IceCandidate, PeerId, SessionDescription


@dataclass(frozen=True)
class Call:
    """One call. `attempt` grows with each peer connection of the call (re-offers)."""

    id: str
    peer: PeerId
    direction: str  # "incoming" | "outgoing"
    call_type: str = "video"  # "video" | "audio"
    peer_name: str = ""
    attempt: int = 0
    started_at: float = 0.0
    connected_at: float | None = None


# -- events: local commands -------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerCall:
    pass


@dataclass(frozen=True)
class Decline:
    pass


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class PlaceCall:
    peer: PeerId
    call_type: str = "video"
    peer_name: str = ""


# -- events: from the rtc session and the timers ----------------------------------------------


@dataclass(frozen=True)
class LocalDescription:
    """The rtc session's answer or offer is ready (with its candidates inside)."""

    call_id: str
    attempt: int
    description: SessionDescription


@dataclass(frozen=True)
class RtcFailed:
    call_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class MediaState:
    call_id: str
    attempt: int
    state: str  # RTCPeerConnection.connectionState: connected, disconnected, failed, closed, ...


@dataclass(frozen=True)
class Recover:
    """The call's media path (this attempt's) is lost and the server is reachable: re-offer."""

    call_id: str
    attempt: int


@dataclass(frozen=True)
class TimerFired:
    name: str
    call_id: str


@dataclass(frozen=True)
class Released:
    call_id: str


Event = (
    protocol.Offer
    | protocol.Answer
    | protocol.Candidate
    | protocol.CallEnd
    | protocol.CallReject
    | protocol.CallTimeout
    | protocol.ServerError
    | AnswerCall
    | Decline
    | Hangup
    | PlaceCall
    | LocalDescription
    | RtcFailed
    | MediaState
    | Recover
    | TimerFired
    | Released
)


# -- effects ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: protocol.PeerMessage


@dataclass(frozen=True)
class AcceptOffer:
    """Open (or replace) the call's peer connection and answer `offer`."""

    call: Call
    offer: SessionDescription
    candidates: tuple[IceCandidate, ...] = ()


@dataclass(frozen=True)
class CreateOffer:
    call: Call


@dataclass(frozen=True)
class Reoffer:
    """Replace the call's peer connection with a new one and offer it in the same call,
    shaped like the session the peer has (rtc/reoffer.py)."""

    call: Call


@dataclass(frozen=True)
class ApplyAnswer:
    call: Call
    answer: SessionDescription


@dataclass(frozen=True)
class AddCandidate:
    call: Call
    candidate: IceCandidate


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay_s: float
    call_id: str


@dataclass(frozen=True)
class CancelTimer:
    name: str
    call_id: str


@dataclass(frozen=True)
class Release:
    """Stop all tracks, close the peer connection, clear timers; then report `Released`."""

    call: Call


@dataclass(frozen=True)
class Finished:
    """A call is over (or was refused without ever becoming the current call): log it."""

    call: Call
    outcome: str  # answered, missed, declined, busy, refused, timed out, failed, cancelled
    reason: str | None = None
    ended_at: float = 0.0
    details: dict = field(default_factory=dict)


Effect = (
    Send | AcceptOffer | CreateOffer | Reoffer | ApplyAnswer | AddCandidate
    | StartTimer | CancelTimer | Release | Finished
)
