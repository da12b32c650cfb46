"""Call states, the triggers that move between them, and the one transition table.

`TRANSITIONS` is the only place where transitions are listed. The machine picks a trigger for
each event it accepts and looks the next state up here; a missing key is a programming error.
"""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    IDLE = "idle"
    RINGING = "ringing"  # an incoming call waits for the answer decision (manual, delay)
    CALLING = "calling"  # our offer is out, waiting for the callee
    CONNECTING = "connecting"  # descriptions exchanged, ICE/DTLS under way
    CONNECTED = "connected"
    RECOVERING = "recovering"  # the path was lost: our re-offer is out; the grace runs
    ENDING = "ending"  # resources being released; back to idle when done


class Trigger(str, Enum):
    INCOMING_RING = "incoming ring"  # offer, the policy says wait (manual mode, answer delay)
    INCOMING_ANSWER = "incoming answer"  # offer, the policy says answer now
    ANSWER = "answer"  # the decision to answer a ringing call
    PLACE_CALL = "place call"
    REMOTE_ANSWERED = "remote answered"  # the callee's answer arrived
    REOFFER = "re-offer"  # the peer of this call sent a new offer: replace the connection
    LOCAL_READY = "local description ready"
    CANDIDATE = "candidate"
    MEDIA_CONNECTED = "media connected"
    MEDIA_INTERRUPTED = "media interrupted"  # ICE disconnected: grace timer runs
    RECOVER = "recover"  # the path is lost and the server reachable: re-offer in the call
    END = "end"  # any end of the call: hang-up, reject, timeout, failure
    RELEASED = "released"


S, T = State, Trigger

TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (S.IDLE, T.INCOMING_RING): S.RINGING,
    (S.IDLE, T.INCOMING_ANSWER): S.CONNECTING,
    (S.IDLE, T.PLACE_CALL): S.CALLING,
    (S.RINGING, T.ANSWER): S.CONNECTING,
    (S.RINGING, T.CANDIDATE): S.RINGING,
    (S.RINGING, T.REOFFER): S.RINGING,
    (S.RINGING, T.END): S.ENDING,
    (S.CALLING, T.LOCAL_READY): S.CALLING,
    (S.CALLING, T.CANDIDATE): S.CALLING,
    (S.CALLING, T.REMOTE_ANSWERED): S.CONNECTING,
    (S.CALLING, T.END): S.ENDING,
    (S.CONNECTING, T.LOCAL_READY): S.CONNECTING,
    (S.CONNECTING, T.CANDIDATE): S.CONNECTING,
    (S.CONNECTING, T.REOFFER): S.CONNECTING,
    (S.CONNECTING, T.MEDIA_CONNECTED): S.CONNECTED,
    (S.CONNECTING, T.MEDIA_INTERRUPTED): S.CONNECTING,
    (S.CONNECTING, T.END): S.ENDING,
    (S.CONNECTED, T.LOCAL_READY): S.CONNECTED,
    (S.CONNECTED, T.CANDIDATE): S.CONNECTED,
    (S.CONNECTED, T.REOFFER): S.CONNECTING,
    (S.CONNECTED, T.MEDIA_CONNECTED): S.CONNECTED,
    (S.CONNECTED, T.MEDIA_INTERRUPTED): S.CONNECTED,
    (S.CONNECTED, T.RECOVER): S.RECOVERING,
    (S.CONNECTED, T.END): S.ENDING,
    (S.RECOVERING, T.RECOVER): S.RECOVERING,
    (S.RECOVERING, T.LOCAL_READY): S.RECOVERING,
    (S.RECOVERING, T.CANDIDATE): S.RECOVERING,
    (S.RECOVERING, T.REMOTE_ANSWERED): S.RECOVERING,
    (S.RECOVERING, T.MEDIA_CONNECTED): S.CONNECTED,
    (S.RECOVERING, T.REOFFER): S.CONNECTING,
    (S.RECOVERING, T.END): S.ENDING,
    (S.ENDING, T.RELEASED): S.IDLE,
}


class IllegalTransition(RuntimeError):
    pass


def next_state(state: State, trigger: Trigger) -> State:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"can't handle {trigger.value} in {state.value}") from None


def mermaid_diagram() -> str:
    """The state diagram for the docs, generated from the table so it cannot drift."""
    lines = ["stateDiagram-v2", "    [*] --> idle"]
    for (source, trigger), target in TRANSITIONS.items():
        if source != target:
            lines.append(f"    {source.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m kioskd.call.states > the diagram in docs/architecture.md
    print(mermaid_diagram())
