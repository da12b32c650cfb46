"""A call that survives the kiosk's roam: Chromium on the caller page calls a kiosk that runs
in a network namespace of its own (a veth pair to the suite's, 192.0.2.0/24); mid-call the
kiosk's address changes. The kiosk notices the lost path, registers again from its new
address and re-offers on a new connection in the same call; the page answers it, on the
connection it has (the web app's way, `reoffer=in-place`) or on a new one
(`reoffer=new-connection`), and the call goes on: same callId, never ended, no ringing.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from kioskd.control import request
from kioskd.relay.server import running_relay
from tests.e2e.conftest import UI_TIMEOUT_MS, missing
from tests.e2e.test_browser import expect_status, page_stats
from tests.integration.conftest import TOKENS
from tests.support.kioskd_process import kioskd_inside
from tests.support.topology import joined_namespace

pytestmark = [
    pytest.mark.netns,
    pytest.mark.e2e,
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.timeout(90),
]


def state_is(state: str):
    return lambda status: status["state"] == state


@pytest.mark.parametrize("mode", ["in-place", "new-connection"])
async def test_the_call_goes_on_after_the_kiosk_roams(browser, tmp_path, mode):
    with joined_namespace() as kiosk_net:
        # Listening on every address of the suite's namespace: the kiosk comes over the veth
        # pair, the page from 127.0.0.1 (a secure context, so the camera API is there).
        async with (running_relay(TOKENS, host="0.0.0.0") as relay,
                    kioskd_inside(kiosk_net.inside,
                                  f"http://{kiosk_net.near}:{relay.url.rsplit(':', 1)[1]}",
                                  tmp_path) as kiosk):
            port = relay.url.rsplit(":", 1)[1]
            await kiosk.line("connected to signaling server", 15)
            page = browser.pages[0] if browser.pages else await browser.new_page()
            query = urlencode({"token": "alice-secret", "call": "kiosk", "reoffer": mode})
            await page.goto(f"http://127.0.0.1:{port}/?{query}")
            await page.click("#video-call")
            await expect_status(page, "connected")
            before = await page_stats(page, "s.framesDecoded > 10")
            call_id = await page.evaluate("window.caller.events.find(e => e.dir === 'out'"
                                          " && e.event === 'webrtc:offer').callId")

            # The roam: the kiosk's address goes and a new one comes.
            kiosk_net.ip("addr", "del", f"{kiosk_net.far}/24", "dev", kiosk_net.far_link)
            kiosk_net.ip("addr", "add", "192.0.2.3/24", "dev", kiosk_net.far_link)
            roamed = time.monotonic()

            await page.wait_for_function(
                "window.caller.events.some(e => e.dir === 'in' && e.event === 'webrtc:offer')",
                timeout=10_000)  # the kiosk's re-offer
            await kiosk.wait_for(state_is("connected"), timeout=10)
            kiosk_back = time.monotonic() - roamed
            # Pictures flow to the page again, from the kiosk's new connection.
            now = await page_stats(page, "s.connectionState === 'connected'")
            floor = min(now["framesDecoded"], before["framesDecoded"])
            await page_stats(page, f"s.framesDecoded > {floor + 10}", timeout_ms=UI_TIMEOUT_MS)
            media_back = time.monotonic() - roamed
            print(f"\nroam ({mode}): kiosk connected again {kiosk_back:.2f} s, "
                  f"10 new frames at the page {media_back:.2f} s after the address change")

            await expect_status(page, "connected")
            events = await page.evaluate("window.caller.events")
            out = [e["event"] for e in events if e["dir"] == "out"]
            assert "webrtc:call-end" not in out and "webrtc:call-reject" not in out
            reoffers = [e for e in events if e["dir"] == "in" and e["event"] == "webrtc:offer"]
            assert len(reoffers) >= 1 and all(e["callId"] == call_id for e in reoffers)
            status = await kiosk.status()
            assert status["call"]["call_id"] == call_id
            calls = await request(kiosk.control, "calls")
            assert len(calls["calls"]) == 1  # one call, in progress, never ended
            # Lost as soon as its address went, not after the watchdog's 2 s of silence.
            await kiosk.line(f"its addresses ['{kiosk_net.far}'] are gone", 1)
