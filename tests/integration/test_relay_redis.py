"""Two kioskd-relay nodes sharing one Redis (Debian's redis-server, a private one per test):
calls, offline errors and presence across nodes.

Whether a user counts as online is read through the protocol itself: a probe event to them,
then a marker event to oneself. The relay handles one sender's events in order, so when the
marker comes back first, the probe was relayed; a user-offline error comes back before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from kioskd import protocol
from kioskd.call.events import Hangup
from kioskd.call.states import State
from kioskd.relay import server as relay_server
from kioskd.relay.server import RelayError, running_relay
from tests.integration.conftest import TOKENS, connected_call, running_kiosk
from tests.support.caller import ScriptedCaller
from tests.support.redis_server import free_port
from tests.support.relay_peers import Peer, healthz, run_cli

pytestmark = pytest.mark.timeout(90)

# Long enough that only an explicit removal, never an expiry, can take a user offline within a
# probe's few seconds; the tests of dead nodes set their own short one.
TTL = 60.0


@pytest.fixture
async def nodes(redis_server):
    async with running_relay(TOKENS, redis_url=redis_server.url, presence_ttl=TTL) as a, \
            running_relay(TOKENS, redis_url=redis_server.url, presence_ttl=TTL) as b:
        yield a, b


@pytest.fixture
async def peers():
    made: list[Peer] = []

    async def connect(url: str, token: str) -> Peer:
        peer = Peer()
        made.append(peer)
        await peer.connect(url, token)
        return peer

    yield connect
    for peer in made:
        await peer.sio.disconnect()


async def is_online(peer: Peer, own_id, target, probe: int = 0) -> bool:
    """Ask the relay through the protocol whether `target` is connected anywhere."""
    await peer.sio.emit(protocol.CALL_TIMEOUT, {"to": target, "callId": f"probe-{probe}"})
    await peer.sio.emit(protocol.CALL_TIMEOUT, {"to": own_id, "callId": f"marker-{probe}"})
    offline = False
    while True:
        event, payload = await peer.next()
        if event == protocol.ERROR and payload.get("to") == target:
            offline = payload["code"] == "user-offline"
        if event == protocol.CALL_TIMEOUT and payload.get("callId") == f"marker-{probe}":
            return not offline


async def seconds_until_offline(peer: Peer, own_id, target, timeout: float) -> float:
    """Probe every 50 ms until `target` is offline; how long that took."""
    start = time.monotonic()
    for probe in range(1_000_000):
        if not await is_online(peer, own_id, target, probe):
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{target!r} still online after {timeout} s"
        await asyncio.sleep(0.05)  # the probing interval, not a synchronisation
    raise AssertionError("not reached")


@pytest.mark.netns
async def test_call_across_nodes_connects_with_media_both_ways(nodes):
    a, b = nodes
    async with running_kiosk(b.url) as kiosk:
        alice = ScriptedCaller(a.url, "alice-secret")
        await alice.connect()
        try:
            # Each node holds only its own user: everything below crossed Redis.
            assert (await healthz(a.url))["users"] == 1 and (await healthz(b.url))["users"] == 1

            # Offer and trickled candidates A -> B, answer B -> A.
            await connected_call(kiosk, alice, "video")
            await alice.sink.wait_for_frames(video=10, audio=25, timeout=15)
            await kiosk.runner.media.sink.wait_for_frames(video=10, audio=25, timeout=15)
            assert kiosk.status()["call"]["peer"] == "alice"
            assert kiosk.status()["call"]["peer_name"] == "Alice"
            await alice.hangup()  # call-end A -> B
            await kiosk.wait_for_state(State.IDLE)
            assert kiosk.runner.last_call["outcome"] == "answered"
            assert kiosk.runner.last_call["reason"] == "hangup"

            # The other way: the kiosk on B calls alice on A and hangs up.
            kiosk.place_call("alice")
            offer = await alice.answer_incoming()
            assert offer["from"] == "kiosk" and offer["fromUsername"] == "Lobby kiosk"
            await asyncio.wait_for(alice.connected.wait(), 10)
            await kiosk.wait_for_state(State.CONNECTED)
            await alice.sink.wait_for_frames(video=5, audio=10, timeout=15)
            kiosk.post(Hangup())
            end = await alice.expect("webrtc:call-end")  # call-end B -> A
            assert end["from"] == "kiosk" and end["callId"] == alice.call_id
            await kiosk.wait_for_state(State.IDLE)
        finally:
            await alice.close()


async def test_events_cross_nodes_in_order_exactly_as_on_one_node(nodes, peers):
    a, b = nodes
    alice = await peers(a.url, "alice-secret")
    kiosk = await peers(b.url, "kiosk-secret")
    candidates = [{"candidate": f"candidate:{n} 1 udp 1 127.0.0.1 {5000 + n} typ host",
                   "sdpMid": "0", "sdpMLineIndex": 0} for n in range(30)]
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    await alice.sio.emit(protocol.OFFER, {"to": "kiosk", "offer": offer, "type": "video",
                                          "callId": "c1", "from": "evil", "extra": [1]})
    for candidate in candidates:
        await alice.sio.emit(protocol.ICE_CANDIDATE, {"to": "kiosk", "candidate": candidate,
                                                      "callId": "c1"})
    await alice.sio.emit(protocol.CALL_END, {"to": "kiosk", "callId": "c1", "reason": "hangup"})

    assert await kiosk.next() == (protocol.OFFER, {"offer": offer, "type": "video",
                                                   "callId": "c1", "extra": [1],
                                                   "from": "alice", "fromUsername": "Alice"})
    for candidate in candidates:
        assert await kiosk.next() == (protocol.ICE_CANDIDATE, {"candidate": candidate,
                                                               "callId": "c1", "from": "alice"})
    assert await kiosk.next() == (protocol.CALL_END, {"callId": "c1", "reason": "hangup",
                                                      "from": "alice",
                                                      "fromUsername": "Alice"})
    # The answer goes back to A, a numeric id addressed as text.
    bob = await peers(a.url, "bob-secret")
    await kiosk.sio.emit(protocol.CALL_REJECT, {"to": "42", "reason": "busy"})
    assert await bob.next() == (protocol.CALL_REJECT, {"reason": "busy", "from": "kiosk",
                                                       "fromUsername": "Lobby kiosk"})


async def test_user_connected_nowhere_is_offline_from_either_node(nodes, peers):
    a, b = nodes
    alice = await peers(a.url, "alice-secret")
    kiosk = await peers(b.url, "kiosk-secret")
    for peer, own_id in ((alice, "alice"), (kiosk, "kiosk")):
        await peer.sio.emit(protocol.OFFER, {"to": 42, "offer": {"type": "offer", "sdp": "v=0"},
                                             "type": "video"})
        event, payload = await peer.next()
        assert event == protocol.ERROR
        assert payload["code"] == "user-offline" and payload["to"] == 42
        assert not await is_online(peer, own_id, "nobody-at-all")
    assert await is_online(alice, "alice", "kiosk") and await is_online(kiosk, "kiosk", "alice")


@pytest.mark.netns
async def test_kiosk_calling_a_user_connected_nowhere_ends_the_attempt(nodes):
    _, b = nodes
    async with running_kiosk(b.url) as kiosk:
        kiosk.place_call("alice")  # alice's token exists, but she is connected to no node
        await kiosk.wait_for_state(State.CALLING)
        await kiosk.wait_for_state(State.IDLE, timeout=4)  # before the 5 s ring timeout
        assert kiosk.runner.last_call["outcome"] == "failed"
        assert kiosk.runner.last_call["reason"] == "unavailable"


async def test_user_who_leaves_node_b_is_offline_for_node_a(nodes, peers):
    a, b = nodes
    alice = await peers(a.url, "alice-secret")
    bob = await peers(b.url, "bob-secret")
    assert await is_online(alice, "alice", 42)
    assert await bob.next() == (protocol.CALL_TIMEOUT, {"callId": "probe-0", "from": "alice",
                                                        "fromUsername": "Alice"})
    await bob.sio.disconnect()
    # Far below the 60 s ttl: the node removed him when he left.
    await seconds_until_offline(alice, "alice", 42, timeout=5)


async def test_user_on_both_nodes_gets_events_on_each_until_the_last_socket_leaves(nodes, peers):
    a, b = nodes
    alice = await peers(a.url, "alice-secret")
    kiosk_a = await peers(a.url, "kiosk-secret")
    kiosk_b = await peers(b.url, "kiosk-secret")
    await alice.sio.emit(protocol.CALL_END, {"to": "kiosk", "callId": "both"})
    for kiosk in (kiosk_a, kiosk_b):
        assert (await kiosk.next())[1]["callId"] == "both"

    await kiosk_a.sio.disconnect()  # still on B
    await kiosk_b.sio.emit(protocol.CALL_END, {"to": "alice", "callId": "from-b"})
    assert (await alice.next())[1]["callId"] == "from-b"  # B has handled kiosk_b's events
    await alice.sio.emit(protocol.CALL_END, {"to": "kiosk", "callId": "b-only"})
    assert (await kiosk_b.next())[1]["callId"] == "b-only"

    await kiosk_b.sio.disconnect()
    await seconds_until_offline(alice, "alice", "kiosk", timeout=5)


async def test_stopped_node_takes_its_users_offline_at_once(nodes, peers, redis_server):
    a, b = nodes
    alice = await peers(a.url, "alice-secret")
    bob = await peers(b.url, "bob-secret")
    b_node = (await healthz(b.url))["node"]
    assert await is_online(alice, "alice", 42)
    await b.stop()
    await asyncio.wait_for(bob.disconnected.wait(), 5)
    assert not await is_online(alice, "alice", 42, probe=1)  # no waiting for an expiry
    async with redis_client(redis_server.url) as client:
        assert not [key for key in await client.keys("kioskd-relay:*") if b_node in key]
        assert not await client.exists("kioskd-relay:user:42")


@contextlib.asynccontextmanager
async def redis_client(url: str):
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def test_presence_withdraws_a_node_that_cannot_hear_the_others(redis_server):
    """A node whose Redis subscription is down would never deliver events to its users, so
    they must look offline to the other nodes, and come back when it hears them again."""
    from kioskd.relay.cluster import Presence  # needs the redis package: after the fixture

    hearing = True
    kiosk_node = Presence(redis_server.url, {"kiosk": {"sid-1"}}, ttl=TTL,
                          listening=lambda: hearing)
    other_node = Presence(redis_server.url, {}, ttl=TTL)
    await kiosk_node.start()
    await other_node.start()
    try:
        assert await other_node.online("kiosk") and not await other_node.online("alice")
        hearing = False
        await kiosk_node.sync()  # what its heartbeat does
        assert not kiosk_node.healthy and not await other_node.online("kiosk")
        hearing = True
        await kiosk_node.sync()
        assert kiosk_node.healthy and await other_node.online("kiosk")
    finally:
        await kiosk_node.stop()
        await other_node.stop()


async def test_presence_without_redis_counts_everyone_online_and_heals(redis_server):
    from kioskd.relay.cluster import Presence

    local: dict[str, set[str]] = {"kiosk": {"sid-1"}}
    node = Presence(redis_server.url, local, ttl=TTL)
    other_node = Presence(redis_server.url, {}, ttl=TTL)
    await node.start()
    await other_node.start()
    try:
        redis_server.stop()
        local["alice"] = {"sid-2"}
        await node.update("alice")  # lost: Redis is gone
        del local["kiosk"]
        await node.update("kiosk")  # lost too
        assert not node.healthy
        assert await node.online("nobody")  # cannot tell: the relay tries, as with no presence
        redis_server.start()  # empty
        await node.sync()  # the heartbeat writes everything again
        assert node.healthy
        assert await other_node.online("alice") and not await other_node.online("kiosk")
    finally:
        await node.stop()
        await other_node.stop()


async def test_crashed_node_leaves_its_users_online_only_until_the_ttl(redis_server, peers,
                                                                       tmp_path):
    ttl = 2.0
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    async with redis_client(redis_server.url) as client, \
            running_relay(TOKENS, redis_url=redis_server.url, presence_ttl=TTL) as a:
        proc = await run_cli("--port", "0", "--tokens", str(tokens), "--log-level", "warning",
                             "--redis", redis_server.url, "--presence-ttl", str(ttl),
                             stdout=asyncio.subprocess.PIPE)
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
            b_url = line.rsplit(" ", 1)[1]
            b_node = (await healthz(b_url))["node"]
            alice = await peers(a.url, "alice-secret")
            bob = await peers(b_url, "bob-secret")
            kiosk_a = await peers(a.url, "kiosk-secret")
            await peers(b_url, "kiosk-secret")  # the kiosk user is on both nodes
            assert await is_online(alice, "alice", 42)
            assert (await bob.next())[0] == protocol.CALL_TIMEOUT  # it crossed to B

            proc.kill()  # no goodbye: B's keys stay in Redis until they expire
            await proc.wait()
            deadline = time.monotonic() + ttl + 3
            while await client.exists(f"kioskd-relay:node:{b_node}"):
                assert time.monotonic() < deadline, "the crashed node's key did not expire"
                await asyncio.sleep(0.05)
            # Bob's entry still names B, but B is no longer alive: offline, at the first ask.
            assert await client.smembers("kioskd-relay:user:42") == {b_node}
            assert not await is_online(alice, "alice", 42, probe=1)

            # The kiosk user is on A too: online, until they leave A.
            assert await is_online(alice, "alice", "kiosk", probe=2)
            await kiosk_a.sio.disconnect()
            await seconds_until_offline(alice, "alice", "kiosk", timeout=3)  # A's ttl is 60 s
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

        # Nothing of the dead node is left behind: only A and its user alice remain.
        keys = sorted(await client.keys("kioskd-relay:*"))
        node_a = (await healthz(a.url))["node"]
        assert keys == [f"kioskd-relay:node:{node_a}", "kioskd-relay:user:alice"]
        assert await client.smembers("kioskd-relay:user:alice") == {node_a}


async def test_nodes_recover_after_redis_restarts(redis_server, peers):
    # A short ttl: the heartbeat (every ttl/3) is what writes presence back into the new,
    # empty Redis.
    options = {"redis_url": redis_server.url, "presence_ttl": 1.5}
    async with running_relay(TOKENS, **options) as a, running_relay(TOKENS, **options) as b:
        alice = await peers(a.url, "alice-secret")
        bob_a = await peers(a.url, "bob-secret")
        kiosk = await peers(b.url, "kiosk-secret")

        redis_server.stop()
        # A node without Redis still relays between its own users, without delay.
        start = time.monotonic()
        await alice.sio.emit(protocol.CALL_END, {"to": 42, "callId": "local"})
        assert (await bob_a.next())[1]["callId"] == "local"
        assert time.monotonic() - start < 1.0
        await wait_for_health(a, "unreachable")

        redis_server.start()  # empty: every key is gone
        await wait_for_health(a, "ok", timeout=15)
        await wait_for_health(b, "ok", timeout=15)
        # Events cross again, to users that reconnected to nothing: presence was rewritten.
        for probe in range(300):
            if await is_online(alice, "alice", "kiosk", probe):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("kiosk on B never came back online for A")
        while (await kiosk.next())[1].get("callId") != f"probe-{probe}":
            pass  # earlier probes that reached B after it listened again


async def wait_for_health(relay, redis_state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (await healthz(relay.url))["redis"] != redis_state:
        assert time.monotonic() < deadline, f"healthz never said redis {redis_state}"
        await asyncio.sleep(0.05)


async def test_unreachable_redis_stops_the_relay_with_one_sentence(tmp_path):
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(RelayError) as error:
        async with running_relay(TOKENS, redis_url=url):
            pass
    message = str(error.value)
    assert message.startswith("cannot use Redis at redis://:***@127.0.0.1:")
    assert "s3cret" not in message and "\n" not in message

    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    proc = await run_cli("--tokens", str(tokens), "--redis", url, "--port", "0",
                         stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1 and out == b""
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("kioskd-relay: cannot use Redis at redis://:***@127.0.0.1:")
    assert "s3cret" not in err.decode() and "Traceback" not in err.decode()


async def test_missing_redis_package_is_one_clear_sentence(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(relay_server, "_redis_available", lambda: False)
    with pytest.raises(RelayError, match="needs the 'redis' Python package"):
        relay_server.Relay(TOKENS, redis_url="redis://127.0.0.1:6379/0")
    code = relay_server.main(["--tokens", str(tmp_path / "t.json"),
                              "--redis", "redis://127.0.0.1:6379/0"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == f"kioskd-relay: {relay_server.REDIS_MISSING}\n"
    assert "pip install" in err
