"""The reconnect loop against real sockets, with the sleeps injected and recorded."""

import asyncio
import socket

from kioskd.policy.backoff import Backoff
from kioskd.signaling.client import OFFLINE, SignalingClient


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens here once the socket is closed


async def test_first_connect_failure_is_retried_with_growing_backoff():
    delays: list[float] = []
    statuses: list[str] = []
    three_tries = asyncio.Event()

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 3:
            three_tries.set()
            await asyncio.Event().wait()  # park here until cancelled

    client = SignalingClient(f"http://127.0.0.1:{closed_port()}", "token", lambda m: None,
                             on_status=statuses.append, sleep=fake_sleep,
                             backoff=Backoff(base_s=1, cap_s=3, rand=lambda: 1.0))
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(three_tries.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert delays == [1, 2, 3]  # exponential, capped; full jitter's top with rand() == 1
    assert statuses[:2] == ["connecting", OFFLINE]
    assert client.status == OFFLINE and not client.connected.is_set()


async def test_send_while_offline_is_refused_not_raised():
    from kioskd import protocol
    client = SignalingClient("http://127.0.0.1:9", "token", lambda m: None)
    assert await client.send(protocol.CallEnd("x")) is False


async def test_a_network_change_cuts_the_backoff_short():
    from kioskd.signaling.client import SignalingClient

    never = asyncio.Event()

    async def long_sleep(delay: float) -> None:
        await never.wait()  # a backoff delay that would outlast the test

    client = SignalingClient("http://127.0.0.1:9", "t", lambda message: None, sleep=long_sleep)
    waiting = asyncio.ensure_future(client._pause(60))
    await asyncio.sleep(0)
    assert not waiting.done()
    client.network_changed("RTM_NEWADDR")  # an address came back: retry now
    await asyncio.wait_for(waiting, 1)


def test_an_address_that_went_away_is_told_apart():
    from kioskd.signaling.network import address_alive

    assert address_alive("127.0.0.1")
    assert not address_alive("192.0.2.77")  # documentation range: never this machine's
