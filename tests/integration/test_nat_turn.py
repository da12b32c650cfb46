"""The kiosk behind a NAT on a real (namespaced) network, media only through TURN.

The real `kioskd` runs in a namespace behind a masquerading NAT, with a user-space bridge on
its link that can take the link down; the caller (a ScriptedCaller with TURN) sits behind
another NAT; the relay and coturn are on a "public" namespace that forwards nothing between
the two (tests/support/nat.py). Cases: a call through TURN over UDP and over TCP; a 2 s blip
on the kiosk's link (the call goes on); a roam to a new address (the kiosk re-offers, the call
goes on); a 10 s outage (the call ends, the kiosk is callable again soon after the link is
back). The seconds measured are printed (pytest -s) and
docs/network.md keeps the numbers of a run; bench/network.py measures them too.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time

import pytest

from tests.support.nat import (
    COTURN_HINT,
    KIOSK_ADDRESS,
    KIOSK_GATEWAY,
    caller_in,
    media_flowing_again,
    nat_topology,
    place_call,
    resolved,
    running_kioskd,
)

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]

BLIP_S, OUTAGE_S = 2.0, 10.0


@pytest.fixture
def net(tmp_path):
    if shutil.which("turnserver") is None:
        pytest.skip(COTURN_HINT)
    with nat_topology(tmp_path) as topology:
        yield topology


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_call_through_turn_carries_media_both_ways(net, tmp_path, transport):
    async with running_kioskd(net, tmp_path, transport) as kiosk, caller_in(net) as caller:
        set_up = await place_call(kiosk, caller)
        print(f"TURN/{transport}: offer to connected in {set_up:.2f} s")
        assert set_up < 5
        assert net.link.set()["forwarded"] > 100  # the kiosk's media crossed its link
        kiosk.process.terminate()
        await asyncio.wait_for(kiosk.process.wait(), 10)
    log = net.turn_log.read_text(errors="replace")
    assert ":kioskd>" in log and "ALLOCATE processed, success" in log
    if transport == "tcp":  # the kiosk's allocation was made over a TCP connection
        assert re.search(r"user <\d+:kioskd>.*reason: TCP connection closed", log), log


async def test_a_two_second_blip_and_the_call_goes_on(net, tmp_path):
    async with running_kioskd(net, tmp_path) as kiosk, caller_in(net) as caller:
        await place_call(kiosk, caller)
        call_id = (await kiosk.status())["call"]["call_id"]
        net.link.down()
        await asyncio.sleep(BLIP_S)  # the blip itself
        net.link.up()
        back = time.monotonic()
        flowing = await media_flowing_again(kiosk, caller, timeout=10)
        lost = [line for at, line in kiosk.lines if at > back - BLIP_S and "media" in line]
        print(f"blip of {BLIP_S} s: media both ways {flowing - back:.2f} s after link-up; "
              f"the kiosk said: {lost}")
        status = await kiosk.status()
        assert status["state"] == "connected" and status["call"]["call_id"] == call_id, status
        assert flowing - back < 3.0  # target 2 s; margin for a shared machine


async def test_a_roam_to_a_new_address_and_the_same_call_goes_on(net, tmp_path):
    async with running_kioskd(net, tmp_path) as kiosk, caller_in(net) as caller:
        await place_call(kiosk, caller)
        call_id = (await kiosk.status())["call"]["call_id"]
        # Another access point, a new lease: the old address (and the TURN allocation made
        # from it) is gone; the kiosk re-offers through a new allocation.
        net.kiosk.ip("addr", "del", f"{KIOSK_ADDRESS}/24", "dev", "eth0")
        net.kiosk.ip("addr", "add", "192.0.2.3/24", "dev", "eth0")
        net.kiosk.ip("route", "add", "default", "via", KIOSK_GATEWAY)
        roamed = time.monotonic()
        flowing = await media_flowing_again(kiosk, caller, timeout=10)
        print(f"roam: media both ways {flowing - roamed:.2f} s after the address changed")
        status = await kiosk.status()
        assert status["state"] == "connected" and status["call"]["call_id"] == call_id, status
        assert await caller.run(lambda c: resolved(c.reoffers_answered)) >= 1
        await kiosk.line("are gone: the media path is lost", 1, after=roamed)
        # The call went through TURN: the re-offer offers only relay candidates.
        await kiosk.line("relay candidates only", 1, after=roamed)


@pytest.mark.parametrize("carrier", [
    pytest.param(True, id="carrier-lost"),
    # Silent: the carrier stays and nothing passes (the uplink behind the access point went):
    # no netlink event; the kiosk's signaling connection stalls and it reconnects as soon as
    # the server answers a test connection again.
    pytest.param(False, id="silent")])
async def test_after_a_ten_second_outage_the_kiosk_is_callable_again_at_once(net, tmp_path,
                                                                             carrier):
    async with running_kioskd(net, tmp_path) as kiosk, caller_in(net) as caller:
        await place_call(kiosk, caller)
        went_down = time.monotonic()
        net.link.down() if carrier else net.link.set(down=True)
        # The kiosk notices the dead path and ends the call after its grace, link still down.
        ended = await kiosk.line("ended", timeout=OUTAGE_S, after=went_down)
        print(f"outage: the kiosk ended the call {ended - went_down:.2f} s after link-down")
        await asyncio.sleep(max(0.0, went_down + OUTAGE_S - time.monotonic()))
        await caller.run(lambda c: c.close_pc())  # the browser ended it too (3 s disconnected)
        net.link.up() if carrier else net.link.set(down=False)
        back = time.monotonic()
        await kiosk.wait_for(lambda status: status["signaling"] == "online"
                             and status["state"] == "idle", 10, every=0.02)
        registered = time.monotonic() - back
        set_up = await place_call(kiosk, caller)
        connected = time.monotonic() - back
        print(f"outage of {OUTAGE_S} s: registered {registered:.2f} s and a new call connected "
              f"{connected:.2f} s (set-up {set_up:.2f} s) after link-up")
        assert registered < 2.0
        assert connected < 3.0  # target 2 s; margin for a shared machine
