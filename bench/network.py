"""The kiosk behind a NAT, media through TURN: set-up time, a blip, an outage.

Builds the topology of tests/support/nat.py (the real kioskd behind a masquerading NAT with a
user-space bridge on its link, a TURN-using scripted aiortc caller behind another NAT, relay
and coturn on a public namespace that forwards nothing between the NATs) and prints one JSON
line:

- `setup_s`: offer sent -> caller connected, over TURN/UDP and TURN/TCP (the kiosk's
  allocation; the caller's is UDP), N calls each;
- `blip`: the kiosk's link down (carrier lost) for 2 s and for 3 s within one call: seconds
  from link-up to media flowing both ways again, whether the kiosk reported the path lost,
  and whether the call went on;
- `outage`: the link down for 10 s, once with the carrier lost (Wi-Fi gone: the kiosk sees
  the link go) and once silently (the carrier stays, nothing passes: an upstream outage):
  when the kiosk ended the call, and seconds from link-up to signaling online and to a new
  call connected;
- `browser_in_kiosk_place`: headless Chromium on the caller page (TURN through `?ice=`) in
  the caller's namespace calls the kiosk, then a second Chromium in the kiosk's namespace
  (the caller page signed in as the kiosk, `autoanswer=1`): set-up (the click on "Video
  call" to the caller page connected, getUserMedia included, N calls each) and a 2 s blip of
  the answerer's link (link-up to 3 new frames on screen at both ends);
- `impaired`: the kiosk's link 40 +- 15 ms late with 2 % loss, both ways; after a settle,
  `--window` seconds of call measured at both ends, in three calls:
  `chromium_to_kiosk` (headless Chromium on the caller page, with TURN, in the caller's
  namespace calls the real kioskd, which renders in a window on a private Xvfb),
  `chromium_to_chromium` (the same caller calls a second Chromium in the kiosk's namespace,
  the caller page with `autoanswer=1`, signed in as the kiosk) and `aiortc_to_kiosk` (the
  scripted aiortc caller, whose synthetic camera stamps its capture time in each frame: the
  kiosk's capture-to-screen; Chromium's camera carries no stamp). Per receiving end: frames
  decoded and rendered per second, freezes (gaps > 200 ms between frames on screen), audio
  concealment; see tests/support/nat_browser.py for how each end is read.

Runs inside a private network namespace (re-executes itself there); needs root, coturn, Xvfb,
and for the browser cases Debian's chromium and playwright (`scripts/setup.sh --test`).
`--only browser` runs just the browser cases (`browser_in_kiosk_place`, `impaired`).

    .venv/bin/python -m bench.network [--calls 5] [--window 20] [--only browser]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import netns
from tests.support.xvfb import running_xvfb

IMPAIRED = {"delay_ms": 40, "jitter_ms": 15, "loss": 0.02}
SETTLE_S = 3.0  # of call before a measuring window (the senders' rate control settles)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def set_up_times(net: Any, folder: Path, transport: str, calls: int) -> dict[str, Any]:
    from tests.support.nat import caller_in, place_call, running_kioskd

    times = []
    async with running_kioskd(net, folder, transport) as kiosk, caller_in(net) as caller:
        for _ in range(calls):
            times.append(await place_call(kiosk, caller))
            await caller.run(lambda c: c.hangup())
            await kiosk.wait_for(lambda status: status["state"] == "idle", 10)
    return {"p50": _round(statistics.median(times)), "max": _round(max(times)),
            "all": [_round(t) for t in times]}


async def blips(kiosk: Any, caller: Any, net: Any, lengths: list[float]) -> list[dict[str, Any]]:
    from tests.support.nat import media_flowing_again

    results = []
    call_id = (await kiosk.status())["call"]["call_id"]
    for length in lengths:
        down = time.monotonic()
        net.link.down()
        await asyncio.sleep(length)
        net.link.up()
        back = time.monotonic()
        result: dict[str, Any] = {"down_s": length}
        try:
            flowing = await media_flowing_again(kiosk, caller, timeout=15)
            result["link_up_to_media_both_ways_s"] = _round(flowing - back)
        except AssertionError as exc:
            result["link_up_to_media_both_ways_s"] = None
            result["error"] = str(exc)
        said = [text for at, text in kiosk.lines if at >= down]
        result["kiosk_reported_path_lost"] = any("media path is lost" in t for t in said)
        status = await kiosk.status()
        result["same_call_goes_on"] = (status["state"] == "connected"
                                       and status["call"]["call_id"] == call_id)
        results.append(result)
    return results


async def outage(kiosk: Any, caller: Any, net: Any, length: float,
                 carrier: bool) -> dict[str, Any]:
    from tests.support.nat import place_call

    await place_call(kiosk, caller)
    down = time.monotonic()
    if carrier:
        net.link.down()
    else:
        net.link.set(down=True)
    result: dict[str, Any] = {"down_s": length, "carrier_lost": carrier}
    try:
        ended = await kiosk.line("ended", timeout=length, after=down)
        result["kiosk_ended_call_after_down_s"] = _round(ended - down)
    except AssertionError:
        result["kiosk_ended_call_after_down_s"] = None  # not within the outage
    await asyncio.sleep(max(0.0, down + length - time.monotonic()))
    await caller.run(lambda c: c.close_pc())  # the browser gave up after 3 s disconnected
    if carrier:
        net.link.up()
    else:
        net.link.set(down=False)
    back = time.monotonic()
    said = [text for at, text in kiosk.lines if at >= down]
    result["signaling_dropped"] = any("signaling server" in t and "connected to" not in t
                                      for t in said)
    try:
        await kiosk.wait_for(lambda status: status["signaling"] == "online"
                             and status["state"] == "idle", 30, every=0.02)
        result["link_up_to_online_and_idle_s"] = _round(time.monotonic() - back)
        set_up = await place_call(kiosk, caller)
        result["link_up_to_new_call_connected_s"] = _round(time.monotonic() - back)
        result["new_call_setup_s"] = _round(set_up)
        await caller.run(lambda c: c.hangup())
        await kiosk.wait_for(lambda status: status["state"] == "idle", 10)
    except (AssertionError, TimeoutError) as exc:
        result["error"] = str(exc)[:300]
    result["kiosk_said"] = [text.split(": ", 1)[-1][:160] for at, text in kiosk.lines
                            if at >= down and ("WARNING" in text or "ended" in text)][:8]
    return result


async def kiosk_connected(kiosk: Any) -> None:
    await kiosk.wait_for(lambda status: status["state"] == "connected"
                         and status["call"]["media"].get("rendered_frames", 0) >= 5, 15)


# Click "Video call" and wait in the page for "connected": seconds (the page's clock).
CLICK_TO_CONNECTED = """async () => {
  const started = performance.now();
  document.getElementById("video-call").click();
  while (window.caller.state !== "connected") {
    if (performance.now() - started > 15000) throw new Error(`still ${window.caller.state}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return (performance.now() - started) / 1000;
}"""
PRESENTED = "window.caller.presented.length"


async def video_both_ways_again(counts: Any, timeout: float = 15) -> float:
    """When both of `counts()` (frames shown at the caller, at the answerer) have grown by 3;
    a count that went down restarted (a new connection)."""
    before = await counts()
    deadline = time.monotonic() + timeout
    while True:
        now = await counts()
        before = tuple(min(b, n) for b, n in zip(before, now, strict=True))
        if all(n >= b + 3 for b, n in zip(before, now, strict=True)):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"video not back in {timeout} s: {before} -> {now}")
        await asyncio.sleep(0.02)


async def blip_2s(net: Any, counts: Any) -> dict[str, Any]:
    net.link.down()
    await asyncio.sleep(2.0)  # the blip itself
    net.link.up()
    back = time.monotonic()
    try:
        return {"link_up_to_video_both_ways_s": _round(await video_both_ways_again(counts) - back)}
    except AssertionError as exc:
        return {"link_up_to_video_both_ways_s": None, "error": str(exc)}


def summary(times: list[float]) -> dict[str, Any]:
    return {"p50": _round(statistics.median(times)), "max": _round(max(times)),
            "all": [_round(t) for t in times]}


async def browser_cases(net: Any, folder: Path, window: float, calls: int) -> dict[str, Any]:
    """Chromium on the caller page calls the kiosk, then a Chromium in the kiosk's place:
    set-up and a 2 s blip on a clean link, then the impaired link, each end measured over
    the same window. Returns {"browser_in_kiosk_place": ..., "impaired": ...}."""
    from playwright.async_api import async_playwright

    from tests.e2e.test_browser import expect_status
    from tests.support.nat import caller_in, place_call, running_kioskd
    from tests.support.nat_browser import (
        KioskSampler,
        caller_page_url,
        chromium_in,
        open_page,
        receiving_end,
    )

    side: dict[str, Any] = {"caller": "headless Chromium on the caller page, TURN/UDP",
                            "setup": "click on Video call -> the caller page connected "
                                     "(getUserMedia included), clean link",
                            "blip": "the answerer's link down 2 s in a call: link-up -> 3 "
                                    "new frames on screen at both ends"}
    impaired: dict[str, Any] = {
        "link": "the kiosk's link (kiosk or browser in its place): "
                f"{IMPAIRED['delay_ms']} +- {IMPAIRED['jitter_ms']} ms, "
                f"{IMPAIRED['loss']:.0%} loss, both ways; the caller's link unimpaired",
        "window_s": window,
    }
    (folder / "kiosk").mkdir()
    async with (async_playwright() as playwright,
                chromium_in(playwright, net.caller, folder, net.relay_url) as browser):
        caller = await open_page(browser, caller_page_url(net, "alice-secret", call="kiosk"))

        ended_early: list[str] = []  # calls that ended before the caller hung up: how

        async def hang_up(answerer_idle: Any) -> None:
            state = await caller.evaluate("window.caller.state")
            if state.startswith("ended") or state in ("idle", "failed"):
                ended_early.append(state)
            else:
                await caller.click("#hangup")
            await answerer_idle()

        async with running_kioskd(net, folder / "kiosk", "udp", "display.mode=window") as kiosk:
            async def kiosk_idle() -> None:
                await kiosk.wait_for(lambda status: status["signaling"] == "online"
                                     and status["state"] == "idle", 15)

            async def kiosk_counts() -> tuple[int, int]:
                media = ((await kiosk.status()).get("call") or {}).get("media") or {}
                return await caller.evaluate(PRESENTED), media.get("rendered_frames", 0)

            await kiosk_idle()
            times = []
            for _ in range(calls):
                times.append(await caller.evaluate(CLICK_TO_CONNECTED))
                await kiosk_connected(kiosk)
                await hang_up(kiosk_idle)
            side["setup_s"] = {"kiosk": summary(times)}
            await caller.click("#video-call")
            await expect_status(caller, "connected")
            await kiosk_connected(kiosk)
            side["blip"] = {"kiosk": await blip_2s(net, kiosk_counts)}
            await hang_up(kiosk_idle)

            net.link.set(**IMPAIRED)
            await caller.click("#video-call")
            await expect_status(caller, "connected")
            await kiosk_connected(kiosk)
            await asyncio.sleep(SETTLE_S)
            at_kiosk, at_caller = await asyncio.gather(
                KioskSampler(kiosk).sample_for(window), receiving_end(caller, window))
            impaired["chromium_to_kiosk"] = {"at_kiosk": at_kiosk, "at_caller_page": at_caller}
            await hang_up(kiosk_idle)

            async with caller_in(net) as scripted:
                await place_call(kiosk, scripted)
                await asyncio.sleep(SETTLE_S)
                impaired["aiortc_to_kiosk"] = {
                    "at_kiosk": await KioskSampler(kiosk).sample_for(window)}
                await scripted.run(lambda c: c.hangup())
                await kiosk_idle()
            net.link.set(delay_ms=0, jitter_ms=0, loss=0)

        # The browser in the kiosk's place: signed in as the kiosk, answering at once.
        async with chromium_in(playwright, net.kiosk, folder, net.relay_url) as other:
            callee = await open_page(other, caller_page_url(net, "kiosk-secret", autoanswer="1"))

            async def callee_idle() -> None:
                await callee.wait_for_function("window.caller.state.startsWith('ended')")

            async def page_counts() -> tuple[int, int]:
                return await caller.evaluate(PRESENTED), await callee.evaluate(PRESENTED)

            times = []
            for _ in range(calls):
                times.append(await caller.evaluate(CLICK_TO_CONNECTED))
                await expect_status(callee, "connected")
                await hang_up(callee_idle)
            side["setup_s"]["browser"] = summary(times)
            await caller.click("#video-call")
            await expect_status(callee, "connected")
            await caller.wait_for_function(f"{PRESENTED} > 0")
            side["blip"]["browser"] = await blip_2s(net, page_counts)
            side["blip"]["browser"]["call_went_on"] = await caller.evaluate(
                "window.caller.state") == "connected"
            await hang_up(callee_idle)

            net.link.set(**IMPAIRED)
            await caller.click("#video-call")
            await expect_status(caller, "connected")
            await expect_status(callee, "connected")
            await asyncio.sleep(SETTLE_S)
            at_callee, at_caller = await asyncio.gather(receiving_end(callee, window),
                                                        receiving_end(caller, window))
            impaired["chromium_to_chromium"] = {"at_callee_page": at_callee,
                                                "at_caller_page": at_caller}
            await hang_up(callee_idle)
    side["calls_ended_before_hangup"] = ended_early
    impaired["bridge_counters"] = {key: value for key, value in net.link.set(
        delay_ms=0, jitter_ms=0, loss=0).items() if key != "ok"}
    return {"browser_in_kiosk_place": side, "impaired": impaired}


async def run(calls: int, window: float, only: str | None) -> dict[str, Any]:
    from tests.support.nat import caller_in, nat_topology, place_call, running_kioskd

    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "path": "kiosk -> bridge -> NAT -> coturn (203.0.113.10) <- NAT <- caller",
    }
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        folder = Path(tmp)
        with nat_topology(folder) as net:
            if only in (None, "browser"):
                sub = folder / "browser"
                sub.mkdir()
                report.update(await browser_cases(net, sub, window, calls))
            if only == "browser":
                return report
            report["setup_s"] = {}
            for transport in ("udp", "tcp"):
                sub = folder / transport
                sub.mkdir()
                report["setup_s"][f"turn_{transport}"] = await set_up_times(net, sub, transport,
                                                                           calls)
            sub = folder / "blip"
            sub.mkdir()
            async with running_kioskd(net, sub) as kiosk, caller_in(net) as caller:
                await place_call(kiosk, caller)
                report["blip"] = await blips(kiosk, caller, net, [2.0, 3.0])
                await caller.run(lambda c: c.hangup())
                await kiosk.wait_for(lambda status: status["state"] == "idle", 10)
                report["outage"] = [await outage(kiosk, caller, net, 10.0, carrier=True),
                                    await outage(kiosk, caller, net, 10.0, carrier=False)]
            report["bridge_counters"] = {key: value for key, value in net.link.set().items()
                                         if key != "ok"}
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5, help="calls per TURN transport")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds measured per call on the impaired link")
    parser.add_argument("--only", choices=("browser",),
                        help="just the Chromium cases (browser_in_kiosk_place, impaired)")
    args = parser.parse_args()
    netns.run_module_inside("bench.network")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:  # the kiosk's window
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        print(json.dumps(asyncio.run(run(args.calls, args.window, args.only))))


if __name__ == "__main__":
    main()
