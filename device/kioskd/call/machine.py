"""The call machine: one call at a time, pure.

`handle(event, now)` returns the effects to carry out; the app executes them and feeds back the
results (local descriptions, media states, timers, releases) as events. Time and call ids are
parameters, so tests drive whole call histories without an event loop.

Messages that do not belong to the current call (another peer, another callId, a stale attempt
or timer) are dropped with one log line; only a second caller's offer gets an answer ("busy").
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from .. import protocol
from ..policy.answer import Action, AnswerPolicy
from ..protocol import SessionDescription
from . import events as ev
from .candidates import PendingCandidates
from .states import State, Trigger, next_state

log = logging.getLogger(__name__)

# Timer names.
RING = "ring"
ANSWER_DELAY = "answer delay"
CONNECT = "connect"
GRACE = "disconnect grace"
PEER_CLOSED = "peer closed"
REOFFER_RETRY = "re-offer retry"

# A browser that hangs up sends webrtc:call-end and then closes its connection. The close comes
# straight over the media path, the call-end through the server, so the close often arrives
# first: wait this long for the call-end, so that the call log records what the person did.
PEER_CLOSED_WAIT_S = 1.0

HISTORY_LENGTH = 64


@dataclass(frozen=True)
class Timeouts:
    ring_s: float = 30.0
    connect_s: float = 15.0
    disconnect_grace_s: float = 3.0
    # A re-offer answered but not connected by then is made again on a new connection (within
    # the grace). Seen with Chromium through TURN when the re-offer reached it the moment its
    # old path came back: applied in place, its connection stayed "connecting" (docs/network.md).
    reoffer_retry_s: float = 1.0


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


class CallMachine:
    def __init__(
        self,
        policy: AnswerPolicy,
        timeouts: Timeouts = Timeouts(),
        new_id: Callable[[], str] = _new_id,
        on_change: Callable[[State, State, ev.Call | None], None] | None = None,
    ) -> None:
        self.policy = policy
        self.timeouts = timeouts
        self._new_id = new_id
        self._on_change = on_change
        self.state = State.IDLE
        self.call: ev.Call | None = None
        # The recent states, for tests and status; bounded: a kiosk runs for months.
        self.history: deque[State] = deque([State.IDLE], maxlen=HISTORY_LENGTH)
        self._offer: SessionDescription | None = None  # kept while ringing
        self._candidates = PendingCandidates()
        self._sent_to_peer = False  # have we said anything about this call to the peer yet?
        self._offering = False  # does this attempt's local description go out as an offer?

    # -- the one place where state changes ---------------------------------------------------

    def _set_state(self, trigger: Trigger) -> None:
        old = self.state
        new = next_state(old, trigger)
        if new is old:
            return
        self.state = new
        self.history.append(new)
        log.info("call %s: %s -> %s", self.call.id if self.call else "-", old.value, new.value)
        if self._on_change:
            self._on_change(old, new, self.call)

    # -- entry point -------------------------------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[ev.Effect]:
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is None:
            raise TypeError(f"not a call event: {event!r}")
        return handler(event, now)

    # -- helpers -----------------------------------------------------------------------------

    def _is_current(self, message: protocol.PeerMessage) -> bool:
        """Does a peer message belong to the current call? Without callId, it does if the peer
        does."""
        call = self.call
        if call is None or not protocol.same_peer(message.peer, call.peer):
            return False
        return message.call_id is None or message.call_id == call.id

    def _drop(self, what: object, why: str) -> list[ev.Effect]:
        log.info("call %s: dropped %s (%s)", self.call.id if self.call else "-",
                 type(what).__name__, why)
        return []

    def _send(self, message: protocol.PeerMessage) -> ev.Send:
        self._sent_to_peer = True
        return ev.Send(message)

    def _end(self, now: float, outcome: str, reason: str | None,
             tell_peer: protocol.PeerMessage | None = None) -> list[ev.Effect]:
        """Every path back to idle goes through here: tell the peer, cancel timers, release."""
        call = self.call
        assert call is not None
        effects: list[ev.Effect] = []
        if tell_peer is not None:
            effects.append(self._send(tell_peer))
        effects += [ev.CancelTimer(name, call.id)
                    for name in (RING, ANSWER_DELAY, CONNECT, GRACE, PEER_CLOSED, REOFFER_RETRY)]
        effects.append(ev.Release(call))
        effects.append(ev.Finished(call, outcome, reason, ended_at=now))
        self._offer = None
        self._candidates.clear()
        self._set_state(Trigger.END)
        return effects

    def _accept(self, now: float, offer: SessionDescription) -> list[ev.Effect]:
        assert self.call is not None
        self.call = replace(self.call, attempt=self.call.attempt + 1)
        candidates = self._candidates.take()
        self._offer = None
        self._offering = False
        return [
            *(ev.CancelTimer(name, self.call.id)
              for name in (RING, ANSWER_DELAY, GRACE, PEER_CLOSED)),
            ev.AcceptOffer(self.call, offer, candidates),
            ev.StartTimer(CONNECT, self.timeouts.connect_s, self.call.id),
        ]

    # -- network messages --------------------------------------------------------------------

    def _on_Offer(self, offer: protocol.Offer, now: float) -> list[ev.Effect]:
        if self.state is State.IDLE:
            return self._incoming(offer, now)
        call = self.call
        assert call is not None
        if protocol.same_peer(offer.peer, call.peer) and self.state in (
            State.RINGING, State.CONNECTING, State.CONNECTED, State.RECOVERING
        ):
            # The peer of this call is recovering its connection: answer in place, no ringing.
            # (While our own re-offer is out, the peer's wins: its connection is the one
            # that it is building.)
            # A new callId from the same peer is adopted (it may have missed our call-end).
            self.call = replace(call, id=offer.call_id or call.id, call_type=offer.call_type)
            if offer.call_id and offer.call_id != call.id:
                self._candidates.clear()  # they belonged to the replaced offer
            if self.state is State.RINGING:
                self._offer = offer.description
                self._set_state(Trigger.REOFFER)
                return []
            self._set_state(Trigger.REOFFER)
            return self._accept(now, offer.description)
        # Anyone else (or the same peer while we are calling or hanging up): busy.
        log.info("call %s: busy, rejecting offer from %s", call.id, offer.peer)
        return self._refuse(offer, self._incoming_call(offer, now), "busy", "busy")

    def _incoming_call(self, offer: protocol.Offer, now: float) -> ev.Call:
        return ev.Call(id=offer.call_id or self._new_id(), peer=offer.peer,
                       direction="incoming", call_type=offer.call_type,
                       peer_name=offer.peer_name, started_at=now)

    def _refuse(self, offer: protocol.Offer, call: ev.Call, outcome: str,
                reason: str) -> list[ev.Effect]:
        """An offer that never becomes the current call: reject it (with the offer's own
        callId, or none) and log it."""
        return [ev.Send(protocol.CallReject(offer.peer, reason, call_id=offer.call_id)),
                ev.Finished(call, outcome, reason, ended_at=call.started_at)]

    def _incoming(self, offer: protocol.Offer, now: float) -> list[ev.Effect]:
        decision = self.policy.decide(offer.peer)
        call = self._incoming_call(offer, now)
        if decision.action is Action.REFUSE:
            log.info("call %s: %s is not on the allow list, refusing", call.id, offer.peer)
            return self._refuse(offer, call, "refused", "policy")
        self.call = call
        self._sent_to_peer = False
        self._candidates.adopt(offer.peer, call.id)
        if decision.action is Action.ANSWER:
            self._set_state(Trigger.INCOMING_ANSWER)
            return self._accept(now, offer.description)
        self._offer = offer.description
        self._set_state(Trigger.INCOMING_RING)
        effects: list[ev.Effect] = [ev.StartTimer(RING, self.timeouts.ring_s, call.id)]
        if decision.action is Action.AUTO_ANSWER_LATER:
            effects.append(ev.StartTimer(ANSWER_DELAY, decision.delay_s, call.id))
        return effects

    def _on_Candidate(self, message: protocol.Candidate, now: float) -> list[ev.Effect]:
        if message.candidate.is_end_of_candidates:
            return []  # aiortc would stop accepting all later candidates: ignore, as allowed
        if self.state is State.IDLE:
            # Trickled candidates may overtake their offer: keep a few, briefly.
            self._candidates.early(message)
            return []
        if not self._is_current(message):
            return self._drop(message, "not from the current call")
        if self.state is State.ENDING:
            return self._drop(message, "call is ending")
        self._set_state(Trigger.CANDIDATE)
        if self.state is State.RINGING:
            self._candidates.hold(message.candidate)
            return []
        assert self.call is not None
        return [ev.AddCandidate(self.call, message.candidate)]

    def _on_Answer(self, message: protocol.Answer, now: float) -> list[ev.Effect]:
        if self.state is State.RECOVERING and self._offering and self._is_current(message):
            # The answer to our re-offer; the grace still bounds the recovery.
            assert self.call is not None
            self._offering = False
            self._set_state(Trigger.REMOTE_ANSWERED)
            return [ev.ApplyAnswer(self.call, message.description)]
        if self.state is not State.CALLING or not self._is_current(message):
            return self._drop(message, f"no outgoing call waiting for it in {self.state.value}")
        assert self.call is not None
        if message.peer_name:
            self.call = replace(self.call, peer_name=message.peer_name)
        self._offering = False
        self._set_state(Trigger.REMOTE_ANSWERED)
        return [
            ev.CancelTimer(RING, self.call.id),
            ev.ApplyAnswer(self.call, message.description),
            ev.StartTimer(CONNECT, self.timeouts.connect_s, self.call.id),
        ]

    def _on_CallEnd(self, message: protocol.CallEnd, now: float) -> list[ev.Effect]:
        outcome = {
            State.RINGING: "missed",
            State.CALLING: "declined",
        }.get(self.state, "answered" if self._was_connected() else "failed")
        return self._ended_by_peer(message, now, outcome, message.reason or "hangup")

    def _on_CallReject(self, message: protocol.CallReject, now: float) -> list[ev.Effect]:
        outcome = "busy" if message.reason == "busy" else "declined"
        return self._ended_by_peer(message, now, outcome, message.reason or "declined")

    def _on_CallTimeout(self, message: protocol.CallTimeout, now: float) -> list[ev.Effect]:
        return self._ended_by_peer(message, now, "missed", "timeout")

    def _ended_by_peer(self, message: protocol.PeerMessage, now: float, outcome: str,
                       reason: str) -> list[ev.Effect]:
        if self.state in (State.IDLE, State.ENDING) or not self._is_current(message):
            return self._drop(message, "not from the current call")
        return self._end(now, outcome, reason)

    def _on_ServerError(self, message: protocol.ServerError, now: float) -> list[ev.Effect]:
        call = self.call
        # PROTOCOL.md: the error ends an outgoing call attempt. During a call it may only mean
        # a late candidate found the peer's socket gone; the connection itself decides then.
        if (self.state is not State.CALLING or call is None
                or not protocol.same_peer(message.to, call.peer)):
            log.info("server error %s: %s", message.code, message.message)
            return []
        log.warning("call %s: server says %s: %s", call.id, message.code, message.message)
        return self._end(now, "failed", "unavailable" if message.code == "user-offline"
                         else message.code)

    # -- local commands ----------------------------------------------------------------------

    def _on_AnswerCall(self, event: ev.AnswerCall, now: float) -> list[ev.Effect]:
        if self.state is not State.RINGING:
            return self._drop(event, f"nothing to answer in {self.state.value}")
        assert self._offer is not None
        offer = self._offer
        self._set_state(Trigger.ANSWER)
        return self._accept(now, offer)

    def _on_Decline(self, event: ev.Decline, now: float) -> list[ev.Effect]:
        if self.state is not State.RINGING:
            return self._drop(event, f"nothing to decline in {self.state.value}")
        assert self.call is not None
        return self._end(now, "declined", "declined",
                         protocol.CallReject(self.call.peer, "declined", call_id=self.call.id))

    def _on_Hangup(self, event: ev.Hangup, now: float) -> list[ev.Effect]:
        if self.state is State.RINGING:
            return self._on_Decline(ev.Decline(), now)
        if self.state not in (State.CALLING, State.CONNECTING, State.CONNECTED,
                              State.RECOVERING):
            return self._drop(event, f"no call to hang up in {self.state.value}")
        assert self.call is not None
        outcome = "answered" if self._was_connected() else "cancelled"
        tell = protocol.CallEnd(self.call.peer, "hangup", call_id=self.call.id)
        return self._end(now, outcome, "hangup", tell if self._sent_to_peer else None)

    def _on_PlaceCall(self, event: ev.PlaceCall, now: float) -> list[ev.Effect]:
        if self.state is not State.IDLE:
            return self._drop(event, f"busy ({self.state.value})")
        self.call = ev.Call(id=self._new_id(), peer=event.peer, direction="outgoing",
                            call_type=event.call_type, peer_name=event.peer_name,
                            attempt=1, started_at=now)
        self._sent_to_peer = False
        self._offering = True
        self._candidates.clear(early=True)
        self._set_state(Trigger.PLACE_CALL)
        return [ev.CreateOffer(self.call), ev.StartTimer(RING, self.timeouts.ring_s, self.call.id)]

    # -- rtc session and timers --------------------------------------------------------------

    def _is_current_attempt(self, call_id: str, attempt: int) -> bool:
        return (self.call is not None and self.call.id == call_id
                and self.call.attempt == attempt and self.state is not State.ENDING)

    def _on_LocalDescription(self, event: ev.LocalDescription, now: float) -> list[ev.Effect]:
        if not self._is_current_attempt(event.call_id, event.attempt):
            return self._drop(event, "stale connection attempt")
        call = self.call
        assert call is not None
        self._set_state(Trigger.LOCAL_READY)
        if self._offering:
            return [self._send(protocol.Offer(call.peer, event.description, call.call_type,
                                              call_id=call.id))]
        return [self._send(protocol.Answer(call.peer, event.description, call_id=call.id))]

    def _on_RtcFailed(self, event: ev.RtcFailed, now: float) -> list[ev.Effect]:
        if not self._is_current_attempt(event.call_id, event.attempt):
            return self._drop(event, "stale connection attempt")
        call = self.call
        assert call is not None
        log.warning("call %s: connection failed: %s", call.id, event.reason)
        if call.direction == "incoming" and not self._sent_to_peer:
            tell: protocol.PeerMessage | None = protocol.CallReject(call.peer, "failed",
                                                                    call_id=call.id)
        else:
            tell = protocol.CallEnd(call.peer, "failed", call_id=call.id) \
                if self._sent_to_peer else None
        return self._end(now, "failed", event.reason, tell)

    def _on_MediaState(self, event: ev.MediaState, now: float) -> list[ev.Effect]:
        if not self._is_current_attempt(event.call_id, event.attempt):
            return []  # a replaced connection closing down: expected, not worth a log line
        call = self.call
        assert call is not None
        if event.state == "connected":
            if call.connected_at is None:
                self.call = replace(call, connected_at=now)
            self._set_state(Trigger.MEDIA_CONNECTED)
            return [ev.CancelTimer(CONNECT, call.id), ev.CancelTimer(GRACE, call.id),
                    ev.CancelTimer(REOFFER_RETRY, call.id)]
        if event.state == "disconnected" and self.state is State.CONNECTED:
            self._set_state(Trigger.MEDIA_INTERRUPTED)
            return [ev.StartTimer(GRACE, self.timeouts.disconnect_grace_s, call.id)]
        # aiortc goes from connected straight to "closed" when the peer closes its connection or
        # its consent checks expire (a crashed browser): never "disconnected" or "failed". We
        # stop listening before closing a connection ourselves, so a "closed" here is the peer's:
        # its call-end may be on its way (PEER_CLOSED_WAIT_S).
        if event.state == "closed":
            return [ev.StartTimer(PEER_CLOSED, PEER_CLOSED_WAIT_S, call.id)]
        if event.state == "failed":
            return self._connection_lost(now)
        return []

    def _on_Recover(self, event: ev.Recover, now: float) -> list[ev.Effect]:
        """Re-offer on a new connection in the same call (no ringing); the peer answers it in
        place. Retries come as new Recover events; the grace started when the path was lost
        bounds them all."""
        if (not self._is_current_attempt(event.call_id, event.attempt)
                or self.state not in (State.CONNECTED, State.RECOVERING)):
            return self._drop(event, f"nothing to recover in {self.state.value}")
        call = self.call
        assert call is not None
        self.call = replace(call, attempt=call.attempt + 1)
        self._offering = True
        self._candidates.clear()  # they were for the connection being replaced
        self._set_state(Trigger.RECOVER)
        log.info("call %s: re-offering to %s on a new connection (attempt %d)", call.id,
                 call.peer, self.call.attempt)
        return [ev.Reoffer(self.call),
                ev.StartTimer(REOFFER_RETRY, self.timeouts.reoffer_retry_s, call.id)]

    def _connection_lost(self, now: float) -> list[ev.Effect]:
        call = self.call
        assert call is not None
        return self._end(now, "answered" if self._was_connected() else "failed",
                         "failed", protocol.CallEnd(call.peer, "failed", call_id=call.id))

    def _on_TimerFired(self, event: ev.TimerFired, now: float) -> list[ev.Effect]:
        call = self.call
        if call is None or call.id != event.call_id or self.state is State.ENDING:
            return self._drop(event, "timer of an earlier call")
        if event.name == ANSWER_DELAY and self.state is State.RINGING:
            return self._on_AnswerCall(ev.AnswerCall(), now)
        if event.name == RING and self.state is State.RINGING:
            return self._end(now, "missed", "timeout",
                             protocol.CallReject(call.peer, "timeout", call_id=call.id))
        if event.name == RING and self.state is State.CALLING:
            return self._end(now, "timed out", "timeout",
                             protocol.CallTimeout(call.peer, call_id=call.id))
        if event.name == CONNECT and self.state is State.CONNECTING:
            return self._end(now, "answered" if self._was_connected() else "failed",
                             "connect timeout",
                             protocol.CallEnd(call.peer, "failed", call_id=call.id))
        if event.name == PEER_CLOSED:  # no call-end came: the peer just went away
            return self._connection_lost(now)
        if event.name == REOFFER_RETRY and self.state is State.RECOVERING:
            if self._offering:  # no answer yet: it may still come (answers carry no attempt)
                return [ev.StartTimer(REOFFER_RETRY, self.timeouts.reoffer_retry_s, call.id)]
            log.info("call %s: the re-offer was answered but has not connected in %.1f s",
                     call.id, self.timeouts.reoffer_retry_s)
            return self._on_Recover(ev.Recover(call.id, call.attempt), now)
        if event.name == GRACE and self.state in (State.CONNECTED, State.RECOVERING):
            return self._end(now, "answered", "connection lost",
                             protocol.CallEnd(call.peer, "failed", call_id=call.id))
        return self._drop(event, f"{event.name} timer does not apply in {self.state.value}")

    def _on_Released(self, event: ev.Released, now: float) -> list[ev.Effect]:
        if self.state is not State.ENDING or self.call is None or self.call.id != event.call_id:
            return self._drop(event, "not the ending call")
        self._set_state(Trigger.RELEASED)
        self.call = None
        return []

    def _was_connected(self) -> bool:
        return self.call is not None and self.call.connected_at is not None
