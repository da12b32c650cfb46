"""Whole call histories through the pure machine: no event loop, no network."""

import itertools

import pytest

from kioskd import protocol as p
from kioskd.call import events as ev
from kioskd.call.machine import (
    ANSWER_DELAY,
    CONNECT,
    GRACE,
    PEER_CLOSED,
    PEER_CLOSED_WAIT_S,
    REOFFER_RETRY,
    RING,
    CallMachine,
    Timeouts,
)
from kioskd.call.states import TRANSITIONS, IllegalTransition, State, mermaid_diagram, next_state
from kioskd.policy.answer import AnswerPolicy

OFFER_SDP = p.SessionDescription("offer", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
ANSWER_SDP = p.SessionDescription("answer", "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n")
CAND = p.IceCandidate("candidate:1 1 udp 1 127.0.0.2 5000 typ host", "0", 0)

I, R, CA, CG, CD, E = (State.IDLE, State.RINGING, State.CALLING, State.CONNECTING,
                       State.CONNECTED, State.ENDING)


def machine(mode="always", allow=(), delay=0.0):
    ids = (f"c{n}" for n in itertools.count(1))
    return CallMachine(AnswerPolicy(mode, tuple(allow), delay), Timeouts(30, 15, 3),
                       new_id=lambda: next(ids))


def kinds(effects):
    return [type(e).__name__ for e in effects]


def sent(effects):
    return [e.message for e in effects if isinstance(e, ev.Send)]


def finished(effects):
    return [(e.outcome, e.reason) for e in effects if isinstance(e, ev.Finished)]


def offer(peer="alice", call_id=None, call_type="video"):
    return p.Offer(peer, OFFER_SDP, call_type, "Alice", call_id)


def answered_call(m, peer="alice", call_id=None):
    """Drive an auto-answered incoming call to connected; return its Call."""
    m.handle(offer(peer, call_id), 0)
    call = m.call
    m.handle(ev.LocalDescription(call.id, call.attempt, ANSWER_SDP), 0.1)
    m.handle(ev.MediaState(call.id, call.attempt, "connected"), 0.2)
    return m.call


def test_auto_answer_whole_history():
    m = machine()
    effects = m.handle(offer(call_id="x1"), 0)
    assert m.state is CG
    accept = [e for e in effects if isinstance(e, ev.AcceptOffer)][0]
    assert accept.call.id == "x1" and accept.call.attempt == 1
    assert ev.StartTimer(CONNECT, 15, "x1") in effects
    effects = m.handle(ev.LocalDescription("x1", 1, ANSWER_SDP), 0.1)
    assert sent(effects) == [p.Answer("alice", ANSWER_SDP, call_id="x1")]
    effects = m.handle(ev.MediaState("x1", 1, "connected"), 0.2)
    assert m.state is CD and ev.CancelTimer(CONNECT, "x1") in effects
    effects = m.handle(p.CallEnd("alice", "hangup"), 10)
    assert m.state is E
    assert finished(effects) == [("answered", "hangup")]
    assert "Release" in kinds(effects) and sent(effects) == []
    m.handle(ev.Released("x1"), 10.1)
    assert m.state is I and m.call is None
    assert list(m.history) == [I, CG, CD, E, I]


def test_candidates_before_offer_are_kept_for_it():
    m = machine()
    m.handle(p.Candidate("alice", CAND), 0)
    m.handle(p.Candidate("mallory", CAND), 0)
    effects = m.handle(offer(), 0)
    accept = [e for e in effects if isinstance(e, ev.AcceptOffer)][0]
    assert accept.candidates == (CAND,)


def test_end_of_candidates_is_ignored():
    m = machine()
    call = answered_call(m)
    assert m.handle(p.Candidate("alice", p.IceCandidate("")), 1) == []
    assert m.handle(p.Candidate("alice", CAND), 1) == [ev.AddCandidate(call, CAND)]


def test_second_caller_gets_busy_and_call_goes_on():
    m = machine()
    answered_call(m)
    effects = m.handle(offer("bob", call_id="b1"), 1)
    assert sent(effects) == [p.CallReject("bob", "busy", call_id="b1")]
    assert finished(effects) == [("busy", "busy")]
    assert m.state is CD and m.call.peer == "alice"


def test_a_busy_reject_carries_no_call_id_the_caller_never_sent():
    # PROTOCOL.md: a message without callId belongs to the caller's current call; one with an
    # id it never made could be dropped as a late message of another call.
    m = machine()
    answered_call(m)
    effects = m.handle(offer("bob"), 1)
    assert sent(effects) == [p.CallReject("bob", "busy", call_id=None)]


def test_reoffer_from_same_peer_replaces_connection_without_ringing():
    m = machine(mode="manual")
    m.handle(offer(), 0)
    m.handle(ev.AnswerCall(), 1)
    call = m.call
    m.handle(ev.LocalDescription(call.id, 1, ANSWER_SDP), 1)
    m.handle(ev.MediaState(call.id, 1, "connected"), 2)
    effects = m.handle(offer(), 5)
    assert m.state is CG
    accept = [e for e in effects if isinstance(e, ev.AcceptOffer)][0]
    assert accept.call.attempt == 2
    # The old connection closing is not news (a stale attempt); the new one connecting is.
    assert m.handle(ev.MediaState(call.id, 1, "closed"), 5) == []
    m.handle(ev.MediaState(call.id, 2, "connected"), 6)
    assert list(m.history) == [I, R, CG, CD, CG, CD]


def test_numeric_and_string_ids_are_the_same_peer():
    m = machine()
    answered_call(m, peer=42)
    effects = m.handle(p.CallEnd("42"), 1)
    assert finished(effects) == [("answered", "hangup")]


def test_late_messages_of_an_earlier_call_are_dropped():
    m = machine()
    answered_call(m, call_id="old")
    m.handle(p.CallEnd("alice", call_id="old"), 1)
    m.handle(ev.Released("old"), 1)
    answered_call(m, call_id="new")
    assert m.handle(p.CallEnd("alice", call_id="old"), 2) == []
    assert m.handle(ev.TimerFired(CONNECT, "old"), 2) == []
    assert m.handle(ev.MediaState("old", 1, "failed"), 2) == []
    assert m.state is CD


def test_manual_mode_rings_then_times_out():
    m = machine(mode="manual")
    effects = m.handle(offer(call_id="m1"), 0)
    assert m.state is R and ev.StartTimer(RING, 30, "m1") in effects
    m.handle(p.Candidate("alice", CAND, "m1"), 0.1)
    effects = m.handle(ev.TimerFired(RING, "m1"), 30)
    assert sent(effects) == [p.CallReject("alice", "timeout", call_id="m1")]
    assert finished(effects) == [("missed", "timeout")]
    m.handle(ev.Released("m1"), 30)
    assert list(m.history) == [I, R, E, I]


def test_manual_answer_hands_over_queued_candidates():
    m = machine(mode="manual")
    m.handle(offer(call_id="m1"), 0)
    m.handle(p.Candidate("alice", CAND, "m1"), 0.1)
    effects = m.handle(ev.AnswerCall(), 2)
    accept = [e for e in effects if isinstance(e, ev.AcceptOffer)][0]
    assert accept.candidates == (CAND,) and accept.offer == OFFER_SDP
    assert ev.CancelTimer(RING, "m1") in effects


def test_decline_and_caller_giving_up():
    m = machine(mode="manual")
    m.handle(offer(call_id="d1"), 0)
    effects = m.handle(ev.Decline(), 1)
    assert sent(effects) == [p.CallReject("alice", "declined", call_id="d1")]
    assert finished(effects) == [("declined", "declined")]
    m.handle(ev.Released("d1"), 1)
    m.handle(offer(call_id="d2"), 2)
    effects = m.handle(p.CallTimeout("alice", call_id="d2"), 32)
    assert finished(effects) == [("missed", "timeout")] and sent(effects) == []


def test_answer_delay_answers_by_itself():
    m = machine(delay=2)
    effects = m.handle(offer(call_id="a1"), 0)
    assert m.state is R and ev.StartTimer(ANSWER_DELAY, 2, "a1") in effects
    effects = m.handle(ev.TimerFired(ANSWER_DELAY, "a1"), 2)
    assert m.state is CG and "AcceptOffer" in kinds(effects)


def test_allowlist_refuses_a_stranger_and_stays_idle():
    m = machine(mode="allowlist", allow=["7"])
    effects = m.handle(offer("stranger", call_id="s1"), 0)
    assert sent(effects) == [p.CallReject("stranger", "policy", call_id="s1")]
    assert finished(effects) == [("refused", "policy")]
    assert m.state is I
    m.handle(offer(7), 1)
    assert m.state is CG


def test_failed_offer_is_rejected_and_idle_at_once():
    m = machine()
    m.handle(offer(call_id="f1"), 0)
    effects = m.handle(ev.RtcFailed("f1", 1, "bad sdp"), 0.1)
    assert sent(effects) == [p.CallReject("alice", "failed", call_id="f1")]
    assert finished(effects) == [("failed", "bad sdp")]
    m.handle(ev.Released("f1"), 0.1)
    assert m.state is I


def test_kiosk_hangs_up():
    m = machine()
    call = answered_call(m)
    effects = m.handle(ev.Hangup(), 5)
    assert sent(effects) == [p.CallEnd("alice", "hangup", call_id=call.id)]
    assert finished(effects) == [("answered", "hangup")]


def test_disconnect_grace_then_recover_or_end():
    m = machine()
    call = answered_call(m)
    effects = m.handle(ev.MediaState(call.id, 1, "disconnected"), 3)
    assert effects == [ev.StartTimer(GRACE, 3, call.id)]
    effects = m.handle(ev.MediaState(call.id, 1, "connected"), 4)
    assert ev.CancelTimer(GRACE, call.id) in effects and m.state is CD
    m.handle(ev.MediaState(call.id, 1, "disconnected"), 5)
    effects = m.handle(ev.TimerFired(GRACE, call.id), 8)
    assert finished(effects) == [("answered", "connection lost")]
    assert sent(effects) == [p.CallEnd("alice", "failed", call_id=call.id)]


def test_connect_timeout_ends_the_call():
    m = machine()
    m.handle(offer(call_id="t1"), 0)
    m.handle(ev.LocalDescription("t1", 1, ANSWER_SDP), 0.1)
    effects = m.handle(ev.TimerFired(CONNECT, "t1"), 15)
    assert finished(effects) == [("failed", "connect timeout")]
    assert sent(effects) == [p.CallEnd("alice", "failed", call_id="t1")]


def test_outgoing_call_answered():
    m = machine()
    effects = m.handle(ev.PlaceCall("bob"), 0)
    assert m.state is CA and kinds(effects) == ["CreateOffer", "StartTimer"]
    effects = m.handle(ev.LocalDescription("c1", 1, OFFER_SDP), 0.1)
    assert sent(effects) == [p.Offer("bob", OFFER_SDP, "video", call_id="c1")]
    m.handle(p.Candidate("bob", CAND), 0.5)  # may overtake the answer
    effects = m.handle(p.Answer("bob", ANSWER_SDP, "Bob", "c1"), 1)
    assert m.state is CG and ev.CancelTimer(RING, "c1") in effects
    assert "ApplyAnswer" in kinds(effects)
    m.handle(ev.MediaState("c1", 1, "connected"), 1.5)
    assert list(m.history) == [I, CA, CG, CD]


def test_outgoing_call_not_answered_sends_call_timeout():
    m = machine()
    m.handle(ev.PlaceCall("bob"), 0)
    m.handle(ev.LocalDescription("c1", 1, OFFER_SDP), 0.1)
    effects = m.handle(ev.TimerFired(RING, "c1"), 30)
    assert sent(effects) == [p.CallTimeout("bob", call_id="c1")]
    assert finished(effects) == [("timed out", "timeout")]


@pytest.mark.parametrize("message,outcome", [
    (p.CallReject("bob", "declined"), ("declined", "declined")),
    (p.CallReject("bob", "busy"), ("busy", "busy")),
    (p.ServerError("user-offline", "gone", "bob"), ("failed", "unavailable")),
])
def test_outgoing_call_refused(message, outcome):
    m = machine()
    m.handle(ev.PlaceCall("bob"), 0)
    effects = m.handle(message, 1)
    assert finished(effects) == [outcome] and m.state is E


def test_cancelling_an_outgoing_call_before_the_offer_left_says_nothing():
    m = machine()
    m.handle(ev.PlaceCall("bob"), 0)
    effects = m.handle(ev.Hangup(), 0.05)
    assert sent(effects) == [] and finished(effects) == [("cancelled", "hangup")]


def test_messages_in_the_wrong_state_are_dropped_not_raised():
    m = machine()
    for message in (p.Answer("x", ANSWER_SDP), p.CallEnd("x"), p.CallReject("x"),
                    p.CallTimeout("x"), ev.AnswerCall(), ev.Hangup(), ev.Released("nope"),
                    ev.TimerFired(RING, "nope")):
        assert m.handle(message, 0) == []
    assert list(m.history) == [I]


def test_every_path_back_to_idle_releases_and_cancels_timers():
    for trigger in (p.CallEnd("alice"), ev.Hangup(), ev.MediaState("c1", 1, "failed"),
                    ev.TimerFired(CONNECT, "c1")):
        m = machine()
        m.handle(offer(), 0)
        effects = m.handle(trigger, 1)
        assert [e for e in effects if isinstance(e, ev.Release)], trigger
        cancelled = {e.name for e in effects if isinstance(e, ev.CancelTimer)}
        assert cancelled == {RING, ANSWER_DELAY, CONNECT, GRACE, PEER_CLOSED,
                             REOFFER_RETRY}


def test_table_is_the_only_source_of_transitions():
    with pytest.raises(IllegalTransition, match="can't handle released in idle"):
        next_state(State.IDLE, next(iter(TRANSITIONS))[1].__class__("released"))
    assert "idle --> connecting" in mermaid_diagram()
    # Every state is reachable and can get back to idle.
    targets = {t for t in TRANSITIONS.values()}
    assert targets == set(State)


def test_docs_show_the_current_state_diagram():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    assert mermaid_diagram() in doc, "regenerate with: python -m kioskd.call.states"


def test_server_error_ends_only_an_outgoing_attempt():
    m = machine()
    answered_call(m)
    assert m.handle(p.ServerError("user-offline", "gone", "alice"), 1) == []
    assert m.state is CD


def test_peer_connection_closed_under_us_ends_the_call():
    m = machine()
    call = answered_call(m)
    # The peer's call-end may still be on its way through the server: wait for it a moment.
    assert m.handle(ev.MediaState(call.id, 1, "closed"), 40) == [
        ev.StartTimer(PEER_CLOSED, PEER_CLOSED_WAIT_S, call.id)]
    effects = m.handle(ev.TimerFired(PEER_CLOSED, call.id), 41)
    assert finished(effects) == [("answered", "failed")]
    assert sent(effects) == [p.CallEnd("alice", "failed", call_id=call.id)]


def test_a_call_end_that_comes_after_the_close_is_a_hang_up():
    # A browser hanging up sends call-end (through the server), then closes its connection
    # (straight to us): the close can overtake the call-end. The log says what the person did.
    m = machine()
    call = answered_call(m)
    m.handle(ev.MediaState(call.id, 1, "closed"), 40)
    effects = m.handle(p.CallEnd("alice", "hangup", call_id=call.id), 40.05)
    assert finished(effects) == [("answered", "hangup")]
    assert ev.CancelTimer(PEER_CLOSED, call.id) in effects
    assert m.handle(ev.TimerFired(PEER_CLOSED, call.id), 41) == []  # nothing left to end


def test_history_is_bounded():
    m = machine()
    for n in range(100):
        answered_call(m, call_id=f"h{n}")
        m.handle(p.CallEnd("alice", call_id=f"h{n}"), n)
        m.handle(ev.Released(f"h{n}"), n)
    assert len(m.history) == m.history.maxlen and m.history[-1] is I


# -- recovery: the kiosk re-offers in the same call ----------------------------------------


def lost_path(m, call, now=5.0):
    """The watchdog's verdict on `call`'s current attempt: the grace starts."""
    effects = m.handle(ev.MediaState(call.id, call.attempt, "disconnected"), now)
    assert ev.StartTimer(GRACE, 3, call.id) in effects
    return effects


def test_a_lost_path_is_recovered_by_our_reoffer_in_the_same_call():
    m = machine()
    call = answered_call(m, call_id="r1")
    lost_path(m, call)
    effects = m.handle(ev.Recover("r1", call.attempt), 5.1)
    assert m.state is State.RECOVERING
    [reoffer] = [e for e in effects if isinstance(e, ev.Reoffer)]
    assert reoffer.call.id == "r1" and reoffer.call.attempt == call.attempt + 1
    new = m.call
    # Our description goes out as an offer (the kiosk answered this call first), same callId.
    effects = m.handle(ev.LocalDescription("r1", new.attempt, OFFER_SDP), 5.2)
    assert sent(effects) == [p.Offer("alice", OFFER_SDP, "video", call_id="r1")]
    m.handle(p.Candidate("alice", CAND, "r1"), 5.25)  # the restarted ICE's candidates
    effects = m.handle(p.Answer("alice", ANSWER_SDP, call_id="r1"), 5.3)
    assert effects == [ev.ApplyAnswer(new, ANSWER_SDP)] and m.state is State.RECOVERING
    # The replaced connection closing is not news; the new one connecting ends the grace.
    assert m.handle(ev.MediaState("r1", call.attempt, "closed"), 5.3) == []
    effects = m.handle(ev.MediaState("r1", new.attempt, "connected"), 5.6)
    assert ev.CancelTimer(GRACE, "r1") in effects and m.state is CD
    assert m.call.connected_at == call.connected_at  # the same call, never ended
    assert list(m.history) == [I, CG, CD, State.RECOVERING, CD]


def test_recovery_is_bounded_by_the_grace():
    m = machine()
    call = answered_call(m, call_id="r1")
    lost_path(m, call)
    m.handle(ev.Recover("r1", call.attempt), 5.1)
    m.handle(ev.LocalDescription("r1", m.call.attempt, OFFER_SDP), 5.2)
    m.handle(ev.Recover("r1", m.call.attempt), 6.0)  # a retry (the server came back)
    effects = m.handle(ev.TimerFired(GRACE, "r1"), 8.0)
    assert finished(effects) == [("answered", "connection lost")]
    assert sent(effects) == [p.CallEnd("alice", "failed", call_id="r1")]


def test_a_reoffer_answered_but_not_connected_is_made_again_within_the_grace():
    m = machine()
    call = answered_call(m, call_id="r1")
    lost_path(m, call)
    effects = m.handle(ev.Recover("r1", call.attempt), 5.1)
    assert ev.StartTimer(REOFFER_RETRY, Timeouts().reoffer_retry_s, "r1") in effects
    first = m.call
    m.handle(ev.LocalDescription("r1", first.attempt, OFFER_SDP), 5.2)
    # Not answered yet: an answer carries no attempt, so a new offer now could get the
    # answer to this one. Wait longer.
    effects = m.handle(ev.TimerFired(REOFFER_RETRY, "r1"), 6.3)
    assert kinds(effects) == ["StartTimer"] and m.call == first
    m.handle(p.Answer("alice", ANSWER_SDP, call_id="r1"), 6.4)
    # Answered, and still not connected: a new connection, a new offer.
    effects = m.handle(ev.TimerFired(REOFFER_RETRY, "r1"), 7.5)
    [reoffer] = [e for e in effects if isinstance(e, ev.Reoffer)]
    assert reoffer.call.attempt == first.attempt + 1 and m.state is State.RECOVERING
    # It connects: the retry timer goes with the grace.
    effects = m.handle(ev.MediaState("r1", reoffer.call.attempt, "connected"), 7.8)
    assert {ev.CancelTimer(GRACE, "r1"), ev.CancelTimer(REOFFER_RETRY, "r1")} <= set(effects)
    assert m.handle(ev.TimerFired(REOFFER_RETRY, "r1"), 9.0) == []  # connected: nothing to do


def test_the_peers_own_reoffer_wins_over_ours():
    m = machine()
    call = answered_call(m, call_id="r1")
    lost_path(m, call)
    m.handle(ev.Recover("r1", call.attempt), 5.1)
    effects = m.handle(offer(call_id="r1"), 5.2)
    assert m.state is CG and kinds(effects).count("AcceptOffer") == 1
    accept = [e for e in effects if isinstance(e, ev.AcceptOffer)][0]
    effects = m.handle(ev.LocalDescription("r1", accept.call.attempt, ANSWER_SDP), 5.3)
    assert sent(effects) == [p.Answer("alice", ANSWER_SDP, call_id="r1")]
    # A late answer to our withdrawn re-offer is dropped.
    assert m.handle(p.Answer("alice", ANSWER_SDP, call_id="r1"), 5.4) == []


def test_a_stale_or_untimely_recover_is_dropped():
    m = machine()
    assert m.handle(ev.Recover("nothing", 1), 0) == []
    call = answered_call(m, call_id="r1")
    assert m.handle(ev.Recover("r1", call.attempt - 1), 1) == []
    assert m.state is CD


def test_an_outgoing_call_answers_a_peers_reoffer_with_an_answer():
    m = machine()
    m.handle(ev.PlaceCall("alice"), 0)
    call = m.call
    effects = m.handle(ev.LocalDescription(call.id, call.attempt, OFFER_SDP), 0.1)
    assert [type(x) for x in sent(effects)] == [p.Offer]
    m.handle(p.Answer("alice", ANSWER_SDP, call_id=call.id), 0.2)
    m.handle(ev.MediaState(call.id, call.attempt, "connected"), 0.3)
    effects = m.handle(offer(call_id=call.id), 1)  # the peer re-offers
    accept = [e for e in effects if isinstance(e, ev.AcceptOffer)][0]
    effects = m.handle(ev.LocalDescription(call.id, accept.call.attempt, ANSWER_SDP), 1.1)
    assert sent(effects) == [p.Answer("alice", ANSWER_SDP, call_id=call.id)]
