"""A lost media path is noticed in seconds, not after aiortc's ~30 s of failed consent checks:
the caller's connection goes silent (as when its link goes down) with its sockets still open."""

from __future__ import annotations

import asyncio

import pytest

from kioskd.call.states import State
from tests.integration.conftest import connected_call, running_kiosk
from tests.support.caller import Silenced
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


def reconnecting(kiosk) -> bool:
    call = kiosk.status()["call"]
    return bool(call and call["reconnecting"])


async def test_a_lost_path_is_recovered_in_the_same_call_by_the_kiosks_reoffer(relay, alice):
    async with running_kiosk(relay.url, "call.media_timeout_s=1",
                             "call.disconnect_grace_s=5") as kiosk:
        await connected_call(kiosk, alice)
        call_id = kiosk.runner.machine.call.id
        with Silenced(alice):
            await wait_until(lambda: reconnecting(kiosk), timeout=5)
            # The server is still reachable: the kiosk re-offers in the same call.
            reoffer = await alice.answer_reoffer(timeout=5)
        assert reoffer["callId"] == call_id and reoffer["from"] == "kiosk"
        await asyncio.wait_for(alice.connected.wait(), 10)
        await kiosk.wait_for_state(State.CONNECTED, timeout=10)
        assert not reconnecting(kiosk)
        await kiosk.runner.media.sink.wait_for_frames(video=10, timeout=10)
        await alice.sink.wait_for_frames(video=10, timeout=10)
        assert kiosk.runner.machine.call.id == call_id
        assert State.RECOVERING in kiosk.runner.machine.history
        assert "kioskd_media_lost_total 1" in kiosk.metrics.registry.render()


async def test_an_outage_longer_than_the_grace_ends_the_call_within_seconds(relay, alice):
    async with running_kiosk(relay.url, "call.media_timeout_s=1",
                             "call.disconnect_grace_s=1") as kiosk:
        await connected_call(kiosk, alice)
        with Silenced(alice):
            started = asyncio.get_running_loop().time()
            await kiosk.wait_for_state(State.IDLE, timeout=10)  # aiortc alone: ~30 s
            took = asyncio.get_running_loop().time() - started
            ended = await alice.expect("webrtc:call-end", timeout=5)
        assert took < 5, took
        assert ended["reason"] == "failed"
        assert kiosk.runner.last_call["outcome"] == "answered"
        assert kiosk.runner.last_call["reason"] == "connection lost"
