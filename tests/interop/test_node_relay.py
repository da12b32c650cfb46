"""Interop: the kiosk against the web app's real backend kind, a Node.js `socket.io` v4 server
(node-relay/server.js, written from PROTOCOL.md alone), with scripted browser-like callers.
All on loopback inside the suite's private network namespace."""

from __future__ import annotations

import asyncio

import pytest

from kioskd.app import KioskApp
from kioskd.call.states import State
from kioskd.config import load_config
from tests.integration.conftest import running_kiosk
from tests.interop.conftest import TOKENS, connected_caller, running_node_relay
from tests.support.caller import ScriptedCaller

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]

KIOSK_NAME = TOKENS["kiosk-secret"]["username"]


async def call_kiosk(kiosk: KioskApp, caller: ScriptedCaller, call_type: str = "video") -> dict:
    """The caller calls the kiosk through the relay; returns the answer as the caller got it."""
    await caller.call("kiosk", call_type)
    answer = await caller.receive_answer()
    await asyncio.wait_for(caller.connected.wait(), 10)
    await kiosk.wait_for_state(State.CONNECTED)
    return answer


async def wait_until(kiosk: KioskApp, predicate, timeout: float = 10.0) -> None:
    async with kiosk.status_keeper.state_changed:
        await asyncio.wait_for(kiosk.status_keeper.state_changed.wait_for(predicate), timeout)


async def test_caller_calls_the_kiosk_and_media_flows_both_ways(kiosk, alice):
    answer = await call_kiosk(kiosk, alice)
    # What the Node server relayed: `to` replaced by the kiosk's id and name.
    assert answer["from"] == "kiosk" and answer["fromUsername"] == KIOSK_NAME
    assert "to" not in answer and answer["callId"] == alice.call_id
    await alice.sink.wait_for_frames(video=10, audio=25, timeout=15)
    await kiosk.runner.media.sink.wait_for_frames(video=10, audio=25, timeout=15)
    assert kiosk.runner.media.sink.stats()["stamps_decoded"] > 0
    assert alice.sink.stats()["stamps_decoded"] > 0
    call = kiosk.status()["call"]
    assert call["peer"] == "alice" and call["peer_name"] == "Alice"  # from fromUsername
    await alice.hangup()
    await kiosk.wait_for_state(State.IDLE)
    assert kiosk.runner.last_call["outcome"] == "answered" and kiosk.runner.last_call["reason"] == "hangup"


async def test_kiosk_calls_a_user_and_media_flows_both_ways(kiosk, alice):
    kiosk.place_call("alice")
    offer = await alice.answer_incoming()
    assert offer["from"] == "kiosk" and offer["fromUsername"] == KIOSK_NAME
    assert offer["type"] == "video" and "to" not in offer
    await asyncio.wait_for(alice.connected.wait(), 10)
    await kiosk.wait_for_state(State.CONNECTED)
    await alice.sink.wait_for_frames(video=10, audio=25, timeout=15)
    await kiosk.runner.media.sink.wait_for_frames(video=10, audio=25, timeout=15)
    from kioskd.call.events import Hangup
    kiosk.post(Hangup())
    end = await alice.expect("webrtc:call-end")
    assert end["from"] == "kiosk" and end["fromUsername"] == KIOSK_NAME
    await kiosk.wait_for_state(State.IDLE)


async def test_a_wrong_token_is_unauthorized_and_the_kiosk_keeps_running(node_relay, tmp_path):
    config = load_config(None, [f"signaling.url={node_relay.url}", "display.mode=none",
                                f"calllog.path={tmp_path / 'calls.sqlite3'}",
                                f"control.socket={tmp_path / 'control.sock'}"])
    app = KioskApp(config, "wrong-token")
    task = asyncio.create_task(app.run())
    try:
        # The Node server's `next(new Error("unauthorized"))` reaches python-socketio as a
        # connect_error whose message the kiosk recognises.
        await wait_until(app, lambda: app.signaling.status == "unauthorized")
        await asyncio.sleep(0.2)
        assert not task.done()
        assert app.signaling.status == "unauthorized" and app.runner.machine.state is State.IDLE
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "unknown token" in node_relay.log()


async def test_numeric_user_ids_work_both_ways(kiosk, bob):
    # Bob is user 42 (a number). He calls the kiosk...
    await call_kiosk(kiosk, bob)
    assert kiosk.status()["call"]["peer"] == 42
    await kiosk.runner.media.sink.wait_for_frames(video=3, audio=10, timeout=15)
    await bob.hangup()
    await kiosk.wait_for_state(State.IDLE)
    assert kiosk.runner.last_call["peer"] == 42 and kiosk.runner.last_call["outcome"] == "answered"
    # ...and the kiosk calls him back by the text "42" (a config value is text); the server
    # routes by String(id) and Bob's replies come back `from: 42`, a number.
    kiosk.place_call("42")
    offer = await bob.answer_incoming()
    assert offer["from"] == "kiosk"
    await asyncio.wait_for(bob.connected.wait(), 10)
    await kiosk.wait_for_state(State.CONNECTED)
    await bob.sink.wait_for_frames(video=3, audio=10, timeout=15)
    await kiosk.runner.media.sink.wait_for_frames(video=3, audio=10, timeout=15)


async def test_a_second_caller_is_told_busy(kiosk, alice, bob):
    await call_kiosk(kiosk, alice)
    await bob.call("kiosk")
    reject = await bob.expect("webrtc:call-reject")
    assert reject["reason"] == "busy" and reject["from"] == "kiosk"
    assert reject["fromUsername"] == KIOSK_NAME and reject["callId"] == bob.call_id
    assert kiosk.runner.machine.state is State.CONNECTED and kiosk.runner.machine.call.peer == "alice"
    await kiosk.runner.media.sink.wait_for_frames(video=3, timeout=10)


HOSTILE = [
    # not objects at all (the Node relay drops these itself)
    ("webrtc:offer", "not an object"),
    ("webrtc:offer", 12),
    ("webrtc:offer", ["kiosk"]),
    ("webrtc:answer", None),
    ("webrtc:offer", {"to": ["kiosk"], "offer": {"type": "offer", "sdp": "v=0\r\n"}}),
    ("webrtc:offer", {"to": {"id": "kiosk"}}),
    # objects the relay forwards to the kiosk, with wrong or hostile contents
    ("webrtc:offer", {"to": "kiosk"}),
    ("webrtc:offer", {"to": "kiosk", "offer": "v=0"}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": 12}}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": ["v=0"]}}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "answer", "sdp": "v=0\r\n"}}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": "v=0\r\n"},
                      "type": "hologram"}),
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": "v=0\r\n"},
                      "callId": {"$gt": ""}}),
    # a huge SDP: over the kiosk's limit, under Socket.IO's default 1 MB message limit
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": "v=0" + "x" * 300_000}}),
    # binary: socket.io carries it as an attachment and hands the kiosk bytes
    ("webrtc:offer", {"to": "kiosk", "offer": {"type": "offer", "sdp": b"v=0\r\n\x00\xff"}}),
    ("webrtc:offer", {"to": "kiosk", "offer": b"\x00" * 1000}),
    ("webrtc:ice-candidate", {"to": "kiosk", "candidate": {"candidate": 5}}),
    ("webrtc:ice-candidate", {"to": "kiosk",
                              "candidate": ["candidate:1 1 udp 1 1.2.3.4 9 typ host"]}),
    ("webrtc:ice-candidate", {"to": "kiosk", "candidate": {"candidate": "candidate:garbage",
                                                           "sdpMid": "0"}}),
    ("webrtc:ice-candidate", {"to": "kiosk", "candidate": {"candidate": "candidate:x",
                                                           "sdpMLineIndex": "0"}}),
    ("webrtc:ice-candidate", {"to": "kiosk"}),
    ("webrtc:answer", {"to": "kiosk", "answer": None}),
    ("webrtc:answer", {"to": "kiosk", "answer": {"type": "answer", "sdp": "v=0\r\n"}}),
    ("webrtc:call-end", {"to": "kiosk", "callId": ["x"]}),
    ("webrtc:call-reject", {"to": "kiosk", "reason": {"busy": True}}),
    ("webrtc:call-timeout", {"to": "kiosk", "fromUsername": "\x1b[31mspoof", "from": "alice"}),
    ("webrtc:error", {"code": "user-offline", "to": "kiosk"}),  # not relayed by the server
    ("webrtc:bogus", {"to": "kiosk"}),
]


async def test_hostile_events_through_the_node_relay_leave_the_kiosk_callable(kiosk, mallory,
                                                                               alice):
    for event, payload in HOSTILE:
        await mallory.emit(event, payload)
    # Socket.IO keeps one socket's events in order: once the kiosk has refused this last,
    # parseable but unusable offer, it has been through everything above.
    await mallory.emit("webrtc:offer", {"to": "kiosk", "type": "video", "callId": "last",
                                        "offer": {"type": "offer", "sdp": "v=0\r\nm=video x\r\n"}})
    reject = await mallory.expect("webrtc:call-reject")
    assert reject["reason"] == "failed" and reject["callId"] == "last"
    await kiosk.wait_for_state(State.IDLE)
    assert kiosk.signaling.status == "online" and kiosk.signaling.reconnects == 0
    await call_kiosk(kiosk, alice)
    await kiosk.runner.media.sink.wait_for_frames(video=3, audio=10, timeout=15)
    await alice.sink.wait_for_frames(video=3, audio=10, timeout=15)

    # The same again in the middle of Alice's call, plus attempts to end it in her name: the
    # server overwrites `from`, so to the kiosk these come from Mallory and are not Alice's.
    for event, payload in HOSTILE:
        await mallory.emit(event, payload)
    for event in ("webrtc:call-end", "webrtc:call-reject", "webrtc:call-timeout"):
        await mallory.emit(event, {"to": "kiosk", "from": "alice", "fromUsername": "Alice",
                                   "callId": alice.call_id})
    await mallory.call("kiosk")  # a real offer, from someone else: busy
    reject = await mallory.expect("webrtc:call-reject")
    assert reject["reason"] == "busy"
    assert kiosk.runner.machine.state is State.CONNECTED and kiosk.runner.machine.call.peer == "alice"
    frames = kiosk.runner.media.sink.video_frames
    await kiosk.runner.media.sink.wait_for_frames(video=frames + 3, timeout=10)


async def test_calling_an_offline_user_fails_on_the_servers_user_offline_error(kiosk):
    kiosk.place_call("nobody")
    await wait_until(kiosk, lambda: kiosk.runner.last_call.get("peer") == "nobody", timeout=5)
    # Well inside the 5 s ring timeout: it was the server's webrtc:error that ended it.
    assert kiosk.runner.last_call["outcome"] == "failed"
    assert kiosk.runner.last_call["reason"] == "unavailable"
    await kiosk.wait_for_state(State.IDLE)


async def test_a_backend_that_forwards_only_the_documented_fields(tmp_path):
    """A backend that builds each relayed payload from PROTOCOL.md's table drops the
    extensions (callId, reason): calls must work without them."""
    async with running_node_relay(TOKENS, tmp_path, fields="strict") as relay, \
            running_kiosk(relay.url) as kiosk, \
            connected_caller(relay.url, "alice-secret") as alice:
        answer = await call_kiosk(kiosk, alice)
        assert "callId" not in answer and answer["from"] == "kiosk"
        await kiosk.runner.media.sink.wait_for_frames(video=3, audio=10, timeout=15)
        await alice.hangup()
        await kiosk.wait_for_state(State.IDLE)
        assert kiosk.runner.last_call["outcome"] == "answered"
        kiosk.place_call("alice")
        offer = await alice.answer_incoming()
        assert "callId" not in offer
        await asyncio.wait_for(alice.connected.wait(), 10)
        await kiosk.wait_for_state(State.CONNECTED)
        await alice.sink.wait_for_frames(video=3, audio=10, timeout=15)
