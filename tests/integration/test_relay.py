"""kioskd-relay against real python-socketio clients over loopback: PROTOCOL.md's relay rules.

"Nothing else arrived" is shown without sleeping: the relay handles one sender's events in
order and each socket receives in order, so when a later marker event reaches a socket first,
the earlier event was never sent to it.
"""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import pytest
import socketio

from kioskd import protocol
from kioskd.relay.server import running_relay
from tests.support.relay_peers import Peer, healthz, run_cli

TIMEOUT = 5
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
TOKENS = {
    "tok-kiosk": {"userId": "kiosk-1", "username": "Lobby kiosk"},
    "tok-alice": {"userId": 42, "username": "Alice"},
    "tok-bob": {"userId": "bob", "username": "Bob"},
}


@pytest.fixture(params=["one-node", "redis"])
async def relay(request):
    """Every rule holds for a lone relay and for a node that shares users through Redis."""
    options = {}
    if request.param == "redis":
        options["redis_url"] = request.getfixturevalue("redis_server").url
    async with running_relay(TOKENS, **options) as r:
        yield r


@pytest.fixture
async def connect(relay):
    peers: list[Peer] = []

    async def _connect(token: str, **options) -> Peer:
        peer = Peer()
        peers.append(peer)
        await peer.connect(relay.url, token, **options)
        return peer

    yield _connect
    for peer in peers:
        await peer.sio.disconnect()


def offer(to, **extra) -> dict:
    return {"to": to, "offer": {"type": "offer", "sdp": SDP}, "type": "video", **extra}


async def test_good_token_connects(relay, connect):
    kiosk = await connect("tok-kiosk")
    assert kiosk.sio.connected


@pytest.mark.parametrize("token", ["nope", "", None])
async def test_unknown_or_missing_token_is_refused_as_unauthorized(relay, token):
    peer = Peer()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.connect(relay.url, token)
    assert await asyncio.wait_for(peer.connect_errors.get(), TIMEOUT) == {"message": "unauthorized"}
    assert not peer.sio.connected


async def test_offer_reaches_every_socket_of_the_target_with_from_and_extras(connect):
    kiosk_a, kiosk_b = await connect("tok-kiosk"), await connect("tok-kiosk")
    bob = await connect("tok-bob")
    alice = await connect("tok-alice")

    # A spoofed `from` must not survive: the relay says who sent it.
    await alice.sio.emit(protocol.OFFER, offer("kiosk-1", callId="c1", extra=[1, {"x": 2}],
                                               **{"from": "evil", "fromUsername": "Evil"}))
    await alice.sio.emit(protocol.CALL_END, {"to": "bob", "callId": "marker"})

    expected = {"offer": {"type": "offer", "sdp": SDP}, "type": "video", "callId": "c1",
                "extra": [1, {"x": 2}], "from": 42, "fromUsername": "Alice"}
    for kiosk in (kiosk_a, kiosk_b):
        event, payload = await kiosk.next()
        assert event == protocol.OFFER and payload == expected
        assert protocol.parse(event, payload) == protocol.Offer(
            42, protocol.SessionDescription("offer", SDP), "video", "Alice", "c1")
    # Bob's first event is the later marker: the offer went to the kiosk's sockets only.
    assert await bob.next() == (protocol.CALL_END,
                                {"callId": "marker", "from": 42, "fromUsername": "Alice"})


async def test_numeric_user_id_is_reachable_as_number_or_text(connect):
    kiosk, alice = await connect("tok-kiosk"), await connect("tok-alice")
    await kiosk.sio.emit(protocol.ANSWER, {"to": 42, "answer": {"type": "answer", "sdp": SDP}})
    await kiosk.sio.emit(protocol.CALL_REJECT, {"to": "42", "reason": "busy"})
    assert await alice.next() == (protocol.ANSWER, {"answer": {"type": "answer", "sdp": SDP},
                                                    "from": "kiosk-1",
                                                    "fromUsername": "Lobby kiosk"})
    assert await alice.next() == (protocol.CALL_REJECT, {"reason": "busy", "from": "kiosk-1",
                                                         "fromUsername": "Lobby kiosk"})


async def test_ice_candidate_carries_from_only(connect):
    kiosk, alice = await connect("tok-kiosk"), await connect("tok-alice")
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0",
                 "sdpMLineIndex": 0}
    await alice.sio.emit(protocol.ICE_CANDIDATE, {"to": "kiosk-1", "candidate": candidate})
    await alice.sio.emit(protocol.ICE_CANDIDATE, {"to": "kiosk-1", "candidate": None})
    assert await kiosk.next() == (protocol.ICE_CANDIDATE, {"candidate": candidate, "from": 42})
    assert await kiosk.next() == (protocol.ICE_CANDIDATE, {"candidate": None, "from": 42})


async def test_offline_target_gets_user_offline_error_back(connect):
    alice = await connect("tok-alice")
    await alice.sio.emit(protocol.OFFER, offer("kiosk-1"))
    event, payload = await alice.next()
    assert event == protocol.ERROR
    assert payload["code"] == "user-offline" and payload["to"] == "kiosk-1"
    assert isinstance(payload["message"], str) and payload["message"]
    assert protocol.parse(event, payload).code == "user-offline"


async def test_oversized_payload_is_rejected_and_the_relay_still_works(connect):
    kiosk, alice = await connect("tok-kiosk"), await connect("tok-alice")
    big = "v=0\r\n" + "a" * (130 * 1024)  # over the default 128 KiB, under the transport cap
    await alice.sio.emit(protocol.OFFER, {"to": "kiosk-1", "offer": {"type": "offer", "sdp": big}})
    event, payload = await alice.next()
    assert event == protocol.ERROR
    assert payload["code"] == "payload-too-large" and payload["to"] == "kiosk-1"

    await alice.sio.emit(protocol.OFFER, offer("kiosk-1", callId="after"))
    event, payload = await kiosk.next()  # the big one never reached the kiosk
    assert event == protocol.OFFER and payload["callId"] == "after"


async def test_payload_far_over_the_transport_cap_cuts_only_that_socket():
    async with running_relay(TOKENS, max_payload=4096) as relay:
        kiosk, alice, mallory = Peer(), Peer(), Peer()
        await kiosk.connect(relay.url, "tok-kiosk")
        await alice.connect(relay.url, "tok-alice")
        await mallory.connect(relay.url, "tok-bob", transports=["websocket"])
        try:
            await mallory.sio.emit(protocol.OFFER, {"to": "kiosk-1", "junk": "x" * 100_000})
            await asyncio.wait_for(mallory.disconnected.wait(), TIMEOUT)

            await alice.sio.emit(protocol.CALL_END, {"to": "kiosk-1"})
            assert await kiosk.next() == (protocol.CALL_END,
                                          {"from": 42, "fromUsername": "Alice"})
        finally:
            for peer in (kiosk, alice, mallory):
                await peer.sio.disconnect()


@pytest.mark.parametrize("args", [
    ("not an object",),
    (["kiosk-1"],),
    (),                                      # no payload at all
    ({"to": "kiosk-1"}, {"to": "kiosk-1"}),  # two payloads
    ({"offer": {"type": "offer", "sdp": SDP}},),
    ({"to": ["kiosk-1"]},),
    ({"to": True},),
    ({"to": {"id": "kiosk-1"}},),
    ({"to": ""},),
    ({"to": None},),
], ids=["string", "list", "empty", "two-args", "missing-to", "list-to", "bool-to", "dict-to",
        "empty-to", "null-to"])
async def test_malformed_event_is_a_bad_request_and_the_relay_still_works(connect, args):
    kiosk, alice = await connect("tok-kiosk"), await connect("tok-alice")
    await alice.sio.emit(protocol.OFFER, args if len(args) != 1 else args[0])
    event, payload = await alice.next()
    assert event == protocol.ERROR and payload["code"] == "bad-request"
    assert "to" not in payload

    await alice.sio.emit(protocol.CALL_END, {"to": "kiosk-1", "reason": "hangup"})
    assert await kiosk.next() == (protocol.CALL_END,
                                  {"reason": "hangup", "from": 42, "fromUsername": "Alice"})


async def test_unknown_event_is_dropped_silently(connect):
    kiosk, alice = await connect("tok-kiosk"), await connect("tok-alice")
    await alice.sio.emit("webrtc:whatever", {"to": "kiosk-1"})
    await alice.sio.emit(protocol.CALL_TIMEOUT, {"to": "kiosk-1"})
    assert await kiosk.next() == (protocol.CALL_TIMEOUT, {"from": 42, "fromUsername": "Alice"})


async def test_garbage_frames_on_a_raw_websocket_do_not_hurt_the_relay(relay, connect):
    kiosk, alice = await connect("tok-kiosk"), await connect("tok-alice")
    deep = "[" * 100_000 + "]" * 100_000
    frames = ['42["webrtc:offer",' + deep + "]", "42not json", "42[", '42[5,{"to":"kiosk-1"}]',
              "4", "zzz"]
    ws_url = relay.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        for frame in frames:
            async with http.ws_connect(ws_url) as ws:
                assert (await ws.receive_str(timeout=TIMEOUT)).startswith("0")  # engine.io open
                await ws.send_str('40{"token":"tok-bob"}')
                assert (await ws.receive_str(timeout=TIMEOUT)).startswith("40")
                await ws.send_str(frame)
                await ws.send_bytes(b"\xff\x00 not a packet")

    await alice.sio.emit(protocol.CALL_END, {"to": "kiosk-1"})
    assert await kiosk.next() == (protocol.CALL_END, {"from": 42, "fromUsername": "Alice"})


async def test_healthz_counts_users_and_sockets(relay, connect):
    def counts(health: dict) -> dict:
        if relay.redis_url:  # a node of several also says which it is and how Redis is
            assert health.pop("redis") == "ok" and health.pop("node")
        return health

    assert counts(await healthz(relay.url)) == {"status": "ok", "users": 0, "sockets": 0}
    await connect("tok-kiosk")
    await connect("tok-kiosk")
    await connect("tok-alice")
    assert counts(await healthz(relay.url)) == {"status": "ok", "users": 2, "sockets": 3}


async def test_static_page_is_served_only_when_present(tmp_path):
    async with running_relay(TOKENS, static_dir=tmp_path) as relay:
        async with aiohttp.ClientSession() as http:
            async with http.get(relay.url + "/") as resp:
                assert resp.status == 404
    (tmp_path / "index.html").write_text("<h1>call</h1>")
    (tmp_path / "app.js").write_text("// js")
    async with running_relay(TOKENS, static_dir=tmp_path) as relay:
        async with aiohttp.ClientSession() as http:
            async with http.get(relay.url + "/") as resp:
                assert resp.status == 200 and "<h1>call</h1>" in await resp.text()
            async with http.get(relay.url + "/static/app.js") as resp:
                assert resp.status == 200 and await resp.text() == "// js"


async def test_cli_listens_relays_and_exits_cleanly_on_sigterm(tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    proc = await run_cli("--port", "0", "--tokens", str(tokens), "--log-level", "warning",
                         stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("kioskd-relay listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert (await healthz(url))["status"] == "ok"
        kiosk = Peer()
        await kiosk.connect(url, "tok-kiosk")
        await kiosk.sio.emit(protocol.CALL_END, {"to": "kiosk-1"})  # to itself: a round trip
        assert await kiosk.next() == (protocol.CALL_END,
                                      {"from": "kiosk-1", "fromUsername": "Lobby kiosk"})
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        await asyncio.wait_for(kiosk.disconnected.wait(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_rejects_a_bad_tokens_file_naming_file_and_entry(tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"secret-1": {"userId": "a", "username": "A"},
                                  "secret-2": {"userId": True, "username": "B"}}))
    proc = await run_cli("--tokens", str(tokens), stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    message = err.decode()
    assert proc.returncode == 2
    assert str(tokens) in message and "entry #2" in message and "secret-2" not in message
