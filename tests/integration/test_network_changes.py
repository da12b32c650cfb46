"""The kiosk on its own network namespace, joined to the suite's by a veth pair: when its
address changes (a roam, a new DHCP lease) it registers again at once, not when Engine.IO's
ping times out (~45 s), and a caller gets through."""

from __future__ import annotations

import asyncio
import time

import pytest

from kioskd.relay.server import running_relay
from tests.integration.conftest import TOKENS
from tests.support.caller import ScriptedCaller
from tests.support.kioskd_process import kioskd_inside
from tests.support.topology import joined_namespace

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


async def test_a_new_address_registers_again_at_once_and_calls_get_through(tmp_path):
    with joined_namespace() as kiosk_net:
        async with (running_relay(TOKENS, host=kiosk_net.near) as relay,
                    kioskd_inside(kiosk_net.inside, relay.url, tmp_path) as kiosk):
            caller = ScriptedCaller(relay.url, "alice-secret")
            try:
                await kiosk.line("connected to signaling server", 15)
                # A roam: the old address goes, with its TCP connection, and a while later
                # a new one comes (another access point, a new lease).
                lost = time.monotonic()
                kiosk_net.ip("addr", "del", f"{kiosk_net.far}/24", "dev", kiosk_net.far_link)
                await kiosk.line("reconnecting to", 5, after=lost)
                await kiosk.line("cannot reach signaling server", 5, after=lost)
                kiosk_net.ip("addr", "add", "192.0.2.3/24", "dev", kiosk_net.far_link)
                roamed = time.monotonic()
                back = await kiosk.line("connected to signaling server", 5, after=roamed)
                assert back - roamed < 2.0
                await caller.connect()
                await caller.call("kiosk")
                answer = await caller.receive_answer(timeout=10)
                assert answer["from"] == "kiosk"
                await asyncio.wait_for(caller.connected.wait(), 10)
                await caller.sink.wait_for_frames(video=5, timeout=10)
            finally:
                await caller.close()
