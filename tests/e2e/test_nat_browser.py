"""Chromium calls the kiosk behind its NAT over an impaired link, media only through TURN.

The topology of tests/support/nat.py: the real kioskd (rendering in a window on a private
Xvfb) behind a masquerading NAT, its link 40 +- 15 ms late with 2 % loss both ways (the
user-space bridge); headless Chromium on the caller page (`?ice=` gives it TURN) in the
caller's namespace behind another NAT; relay and coturn on the public namespace. The call
must connect relay to relay and hold for a 10 s window with video and audio arriving at both
ends. Only loose floors are asserted; the numbers are printed (pytest -s), and
bench/network.py compares them with a browser in the kiosk's place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.conftest import missing
from tests.e2e.test_browser import expect_status
from tests.support.nat import COTURN_HINT, nat_topology, running_kioskd
from tests.support.nat_browser import (
    KioskSampler,
    caller_page_url,
    chromium_in,
    open_page,
    receiving_end,
)
from tests.support.xvfb import running_xvfb

pytestmark = [
    pytest.mark.netns,
    pytest.mark.e2e,
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.timeout(90),
]

WINDOW_S = 10.0
IMPAIRED = {"delay_ms": 40, "jitter_ms": 15, "loss": 0.02}


@pytest.fixture
def net(tmp_path):
    if shutil.which("turnserver") is None:
        pytest.skip(COTURN_HINT)
    with nat_topology(tmp_path) as topology:
        yield topology


@pytest.fixture
def display(monkeypatch):
    """A private Xvfb for the kiosk's window (the kiosk inherits DISPLAY)."""
    with running_xvfb(1280, 720) as name:
        monkeypatch.setenv("DISPLAY", name)
        monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
        yield name


@contextlib.asynccontextmanager
async def chromium_calls_the_kiosk(net, folder) -> AsyncIterator[tuple[Any, Any, dict]]:
    """The real kioskd behind its NAT (rendering in a window) and Chromium on the caller page
    behind the other, in a video call with frames on the kiosk's screen: (kiosk, page, the
    kiosk's status then)."""
    from playwright.async_api import async_playwright

    async with (running_kioskd(net, folder, "udp", "display.mode=window") as kiosk,
                async_playwright() as playwright,
                chromium_in(playwright, net.caller, folder, net.relay_url) as browser):
        await kiosk.wait_for(lambda status: status["signaling"] == "online"
                             and status["state"] == "idle", 15)
        page = await open_page(browser, caller_page_url(net, "alice-secret", call="kiosk"))
        await page.click("#video-call")
        await expect_status(page, "connected")
        status = await kiosk.wait_for(lambda status: status["state"] == "connected" and status[
            "call"]["media"].get("rendered_frames", 0) >= 5, 15)
        yield kiosk, page, status


async def test_an_impaired_link_with_chromium_as_the_caller(net, tmp_path, display):
    net.link.set(**IMPAIRED)
    async with chromium_calls_the_kiosk(net, tmp_path) as (kiosk, page, _):

        # Both directions over the same window: the kiosk receives the page's video and
        # audio, the page the kiosk's.
        at_page, at_kiosk = await asyncio.gather(receiving_end(page, WINDOW_S),
                                                 KioskSampler(kiosk).sample_for(WINDOW_S))
        print(f"\nimpaired link {IMPAIRED}, Chromium -> kiosk through TURN:\n"
              f"  at the kiosk: {json.dumps(at_kiosk)}\n  at the page: {json.dumps(at_page)}\n"
              f"  bridge: {net.link.set()}")

        assert at_page["connection"] == "connected"
        # The page's NAT address (srflx) or its own relay, to the kiosk's relay: only coturn
        # joins the two NATs.
        assert at_page["candidate_pair"][1] == "relay", at_page
        assert at_kiosk["state"] == "connected"
        # Loose floors: media kept coming both ways (the targets are in bench/network.py).
        assert at_kiosk["decoded_fps"] >= 3 and at_kiosk["rendered_fps"] >= 3, at_kiosk
        assert at_kiosk["audio_samples_vs_clock"] >= 0.5, at_kiosk
        assert at_page["decoded_fps"] >= 3 and at_page["rendered_fps"] >= 3, at_page
        assert at_page["audio_packets_received"] >= 0.5 * 50 * WINDOW_S, at_page  # 20 ms each

        await page.click("#hangup")
        await kiosk.wait_for(lambda status: status["state"] == "idle", 10)


@pytest.mark.parametrize("down_s", [2.0, 3.0])
async def test_a_blip_with_chromium_as_the_caller_and_the_same_call_goes_on(net, tmp_path,
                                                                          display, down_s):
    """The kiosk's link down for a moment mid-call: the same call goes on, through TURN, on
    the old connection or on the kiosk's re-offer, which the page applies in place. 2 s is
    the watchdog's timeout: the re-offer races the link coming back."""
    from bench.network import PRESENTED, video_both_ways_again

    async with chromium_calls_the_kiosk(net, tmp_path) as (kiosk, page, status):
        call_id = status["call"]["call_id"]

        async def counts() -> tuple[int, int]:
            media = ((await kiosk.status()).get("call") or {}).get("media") or {}
            return await page.evaluate(PRESENTED), media.get("rendered_frames", 0)

        net.link.down()
        await asyncio.sleep(down_s)  # the blip itself, not a wait for anything
        net.link.up()
        back = time.monotonic()
        again = await video_both_ways_again(counts, timeout=6)
        print(f"\n{down_s} s blip, Chromium through TURN: video both ways "
              f"{again - back:.2f} s after link-up")
        status = await kiosk.status()
        assert status["state"] == "connected" and status["call"]["call_id"] == call_id, status
        assert await page.evaluate("window.caller.state") == "connected"
        await page.click("#hangup")
        await kiosk.wait_for(lambda status: status["state"] == "idle", 10)
