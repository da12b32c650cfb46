"""Call set-up, side by side: the same browser caller calls three answerers in turn.

- browser -> kiosk: `python -m kioskd` in its own process (the shipped config file), answering
  640x480@24, rendering the caller's video in a window (`display.mode=window`) on a private Xvfb;
- browser -> plain aiortc: `python -m bench.plain_answerer` in its own process, an answerer
  written the way aiortc's examples are (renders nothing);
- browser -> browser: a second Chromium page on the same relay, `?autoanswer=1`.

The caller is the relay's caller page (`/`) in headless Chromium (Debian's, via Playwright, a
fake camera and microphone), signed in as alice. Calls go round-robin (one per answerer per
round, the order rotating each round) after one warm-up call each that is not counted. Each
call: click "Video call" on the caller page, wait until the answerer shows (or, for the plain
answerer, decodes) the first caller frame, hang up from the caller page, wait until the
answerer is idle again.

What is measured, all from the moment the caller page emitted `webrtc:offer`:

- `answer_received_ms`: the answer reached the caller page (signaling both ways plus the
  answerer's work up to its answer);
- `caller_connected_ms`: the caller page's connectionState became "connected";
- `answerer_connected_ms`: the answerer's connectionState became "connected" (the kiosk: the
  call's `connected_at`; plain: its "connectionstatechange"; browser: its page's state);
- `first_frame_on_screen_ms`: the answerer put the first caller frame on its screen (the
  kiosk: its video sink's `first_rendered_at`, taken just after the flip; browser: the
  `presentationTime` of the first `requestVideoFrameCallback` on its remote `<video>`);
  the plain answerer has no screen: null;
- `first_frame_decoded_ms`: the answerer's decoder gave out the first caller frame (the
  kiosk: its sink's `first_video_at`; plain: a pass-through probe in front of its
  MediaBlackhole); null for the browser (the page does not expose it).

Clocks. The pages' times are `performance.timeOrigin + performance.now()` (epoch ms), taken by
hooks installed with page.evaluate: the caller page's `window.caller.events.push` stamps each
event as caller.js records it, which is right before `socket.emit` (so "offer sent" is the
emit), and an accessor on `window.caller.state` stamps each state change. Python's times are
`time.time()` (the plain answerer stamps its milestones with `time.time()` in its process: the
same system clock) or, for the kiosk's sink, `time.monotonic()` converted with
`time.time() - time.monotonic()` read at the same moment. Before each call, each page's
clock is compared with `time.time()`: `performance.timeOrigin + performance.now()` read by
page.evaluate, bracketed by `time.time()` on both sides; the offset is the page's reading
minus the bracket's midpoint, and its uncertainty half the bracket (the tightest of three
tries). Page times are corrected by that offset. Both are reported (`page_clock`).

Prints one JSON line. Runs inside a private loopback-only network namespace (re-executes
itself there).

    .venv/bin/python -m bench.setup_compare [--calls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
from typing import Any, Callable

from bench.call_setup import summary
from tests.support import netns
from tests.support.xvfb import running_xvfb

SCENARIOS = ("browser_to_kiosk", "browser_to_plain_aiortc", "browser_to_browser")
TARGET = {"browser_to_kiosk": "kiosk", "browser_to_plain_aiortc": "plain",
          "browser_to_browser": "42"}
PLAIN_TOKEN = "plain-secret"
WAIT_S = 15.0
STATUS_POLL_S = 0.02

# Installed in each page once it is signed in: stamps caller.js's events and state changes
# with the page's epoch clock, and the first frames its remote <video> presents.
HOOKS = """() => {
  const c = window.caller;
  const now = () => performance.timeOrigin + performance.now();
  let state = c.state;
  c.marks = [];
  Object.defineProperty(c, "state", {
    get() { return state; },
    set(v) { state = v; c.marks.push([v, now()]); },
    configurable: true,
  });
  const push = c.events.push;
  c.events.push = function (...items) {
    for (const item of items) item.t = now();
    return push.apply(this, items);
  };
  c.frames = [];
  const video = document.getElementById("remote");
  const onFrame = (_, meta) => {
    if (c.frames.length < 10) c.frames.push(performance.timeOrigin + meta.presentationTime);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}"""
RESET = "() => { window.caller.marks = []; window.caller.frames = []; " \
        "window.caller.events.length = 0; }"
NOW = "performance.timeOrigin + performance.now()"


def wall_ms(monotonic_s: float) -> float:
    """A time.monotonic() reading as time.time() milliseconds."""
    offsets = sorted(time.time() - time.monotonic() for _ in range(5))
    return (monotonic_s + offsets[2]) * 1000


async def page_clock_offset(page) -> tuple[float, float]:
    """(page epoch ms - time.time() ms, uncertainty ms): the tightest of three brackets."""
    best = None
    for _ in range(3):
        before = time.time() * 1000
        reading = await page.evaluate(NOW)
        after = time.time() * 1000
        half = (after - before) / 2
        if best is None or half < best[1]:
            best = (reading - (before + after) / 2, half)
    return best


async def mark_of(page, state: str) -> float:
    """The page time at which window.caller.state first became `state`."""
    await page.wait_for_function(
        "s => window.caller.marks.some(m => m[0] === s)", arg=state, timeout=WAIT_S * 1000)
    marks = await page.evaluate("window.caller.marks")
    return next(t for s, t in marks if s == state)


class PlainEvents:
    """bench.plain_answerer in its own process (python -m bench.plain_answerer --events): its
    call milestones as they come, each stamped with time.time() in that process."""

    def __init__(self, process) -> None:
        self.process = process
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    def start_reading(self) -> None:
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while line := await self.process.proc.stdout.readline():
            self.queue.put_nowait(json.loads(line))

    def clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def wait_for(self, event: str) -> float:
        """time.time() (ms) of the next `event`."""
        async def scan() -> float:
            while True:
                item = await self.queue.get()
                if item.get("event") == event:
                    return item["time"] * 1000
        return await asyncio.wait_for(scan(), WAIT_S)

    async def stop(self) -> None:
        await self.process.stop()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def kiosk_status(kiosk, ready: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The kiosk's status (`kioskctl --json status`) once `ready` says yes (polled)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        status = await kiosk.status()
        if ready(status):
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"kiosk: still not ready after {WAIT_S} s: {status}")
        await asyncio.sleep(STATUS_POLL_S)


async def one_call(scenario: str, caller_page, callee_page, kiosk, plain,
                   kiosk_display: str) -> dict[str, Any]:
    await caller_page.evaluate(RESET)
    await callee_page.evaluate(RESET)
    plain.clear()  # the last call's milestones
    caller_offset, caller_err = await page_clock_offset(caller_page)
    callee_offset, callee_err = await page_clock_offset(callee_page)
    await caller_page.fill("#callee", TARGET[scenario])
    await caller_page.click("#video-call")

    result: dict[str, Any] = {"first_frame_on_screen": None, "first_frame_decoded": None}
    if scenario == "browser_to_kiosk":
        # Read through the control socket once the caller is connected, so that the polling
        # costs the kiosk nothing while it answers.
        await mark_of(caller_page, "connected")
        status = await kiosk_status(kiosk, lambda s: s["call"] and (
            s["call"]["media"].get("first_rendered_at" if kiosk_display == "window"
                                   else "first_video_at") is not None))
        media = status["call"]["media"]
        result["answerer_connected"] = status["call"]["connected_at"] * 1000
        if media.get("first_rendered_at") is not None:
            result["first_frame_on_screen"] = wall_ms(media["first_rendered_at"])
        result["first_frame_decoded"] = wall_ms(media["first_video_at"])
        result["video_size"] = media["video_size"]
    elif scenario == "browser_to_plain_aiortc":
        result["answerer_connected"] = await plain.wait_for("connected")
        result["first_frame_decoded"] = await plain.wait_for("first_video")
    else:
        connected = await mark_of(callee_page, "connected")
        result["answerer_connected"] = connected - callee_offset
        await callee_page.wait_for_function("window.caller.frames.length > 0",
                                            timeout=WAIT_S * 1000)
        first = await callee_page.evaluate("window.caller.frames[0]")
        result["first_frame_on_screen"] = first - callee_offset

    result["caller_connected"] = await mark_of(caller_page, "connected") - caller_offset
    events = await caller_page.evaluate("window.caller.events")
    offer_sent = next(e["t"] for e in events if e["dir"] == "out" and e["event"] ==
                      "webrtc:offer") - caller_offset
    result["answer_received"] = next(e["t"] for e in events if e["dir"] == "in" and e["event"]
                                     == "webrtc:answer") - caller_offset
    row = {key: None if value is None else round(value - offer_sent, 1)
           for key, value in result.items() if key != "video_size"}
    row["video_size"] = result.get("video_size")
    row["page_clock"] = {"caller_offset_ms": round(caller_offset, 2),
                         "callee_offset_ms": round(callee_offset, 2),
                         "uncertainty_ms": round(max(caller_err, callee_err), 2)}

    # Hang up from the caller page; the answerer must be idle before the next call.
    await caller_page.click("#hangup")
    if scenario == "browser_to_kiosk":
        status = await kiosk_status(kiosk, lambda s: s["state"] == "idle")
        row["kiosk_offer_received_to_connected_ms"] = status["last_call"]["setup_ms"]
    elif scenario == "browser_to_plain_aiortc":
        await plain.wait_for("idle")
    else:
        await callee_page.wait_for_function("window.caller.state.startsWith('ended')",
                                            timeout=WAIT_S * 1000)
    await asyncio.sleep(0.3)  # let the last call's teardown finish: not measured
    return row


def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("answer_received", "caller_connected", "answerer_connected",
                "first_frame_on_screen", "first_frame_decoded"):
        values = [row[key] for row in rows if row[key] is not None]
        out[f"{key}_ms"] = summary(values) if values else None
    return out


async def run(calls: int, kiosk_display: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from bench.cpu_per_call_second import KioskdProcess, PlainProcess, started
    from kioskd.relay.server import running_relay
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.integration.conftest import TOKENS

    tokens = {**TOKENS, PLAIN_TOKEN: {"userId": "plain", "username": "Plain aiortc"}}
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SCENARIOS}
    warmup: dict[str, dict[str, Any]] = {}
    async with running_relay(tokens) as relay:
        kiosk = KioskdProcess(relay.url, f"display.mode={kiosk_display}", "video.width=640",
                              "video.height=480", "video.fps=24")
        async with started(kiosk):
            plain = PlainEvents(PlainProcess(relay.url, events=True))
            try:
                await plain.process.start()
                plain.start_reading()
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                    try:
                        context = await browser.new_context()
                        caller_page = await context.new_page()
                        callee_page = await context.new_page()
                        await callee_page.goto(f"{relay.url}/?token=bob-secret&autoanswer=1")
                        await caller_page.goto(f"{relay.url}/?token=alice-secret")
                        for page in (caller_page, callee_page):
                            await page.wait_for_function("window.caller.signedIn",
                                                         timeout=WAIT_S * 1000)
                            await page.evaluate(HOOKS)
                        for scenario in SCENARIOS:
                            warmup[scenario] = await one_call(
                                scenario, caller_page, callee_page, kiosk, plain, kiosk_display)
                        for n in range(calls):
                            order = SCENARIOS[n % 3:] + SCENARIOS[:n % 3]
                            for scenario in order:
                                rows[scenario].append(await one_call(
                                    scenario, caller_page, callee_page, kiosk, plain,
                                    kiosk_display))
                    finally:
                        await browser.close()
            finally:
                await plain.stop()

    offsets = [abs(r["page_clock"][k]) for s in SCENARIOS for r in rows[s]
               for k in ("caller_offset_ms", "callee_offset_ms")]
    uncertainty = [r["page_clock"]["uncertainty_ms"] for s in SCENARIOS for r in rows[s]]
    kiosk_own = [r["kiosk_offer_received_to_connected_ms"] for r in rows["browser_to_kiosk"]]
    return {
        "bench": "setup_compare",
        "calls_each": calls,
        "from": "caller page emitted webrtc:offer",
        "results": {s: collate(rows[s]) for s in SCENARIOS},
        "kiosk_offer_received_to_connected_ms": summary(kiosk_own),
        "caller_video_at_kiosk": rows["browser_to_kiosk"][0]["video_size"],
        "page_clock": {"abs_offset_ms_max": round(max(offsets), 2),
                       "abs_offset_ms_median": round(statistics.median(offsets), 2),
                       "uncertainty_ms_max": round(max(uncertainty), 2)},
        "warmup_call": {s: {k: v for k, v in warmup[s].items() if k.startswith("first")
                            or k.endswith("connected")} for s in SCENARIOS},
        "kiosk": f"python -m kioskd (own process), display.mode={kiosk_display}"
                 f"{' (1280x720 on Xvfb)' if kiosk_display == 'window' else ''}, "
                 "sends 640x480@24",
        "plain_aiortc": "python -m bench.plain_answerer (own process), sends 640x480@24, "
                        "renders nothing",
        "browser": f"headless {CHROMIUM.name} via Playwright, fake camera and microphone",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10, help="counted calls per answerer")
    parser.add_argument("--kiosk-display", choices=("window", "none"), default="window",
                        help="the kiosk's display.mode (none: to see what the window costs)")
    args = parser.parse_args()
    netns.run_module_inside("bench.setup_compare")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        print(json.dumps(asyncio.run(run(args.calls, args.kiosk_display))))


if __name__ == "__main__":
    main()
