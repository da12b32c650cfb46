"""Headless Chromium on the relay's caller page, for the CPU benchmarks: a caller sending
640x480@24 and an answering page, with what they send and receive read from getStats().

Chromium's fake camera gives 20 fps unless told otherwise: `--use-fake-device-for-media-stream=
fps=24` sets its rate. The caller page asks for 1280x720@30 on a desktop (caller.js's
`mediaConstraints`, what the web app asks for), so an init script replaces the page's video
constraints with exactly 640x480@24 before caller.js runs; the frames actually sent are
checked with getStats (outbound-rtp `frameWidth`, `frameHeight`, `framesSent`). Its video
track's `contentHint` is set to "detail": when Chromium's bandwidth estimate or CPU says send
less, it keeps 640x480 and lowers the frame rate (its default lowers the resolution, so the
answerers would not all decode the same size).

Audio gaps (`AudioGapPoller`): the page's inbound audio `concealedSamples` and
`totalSamplesReceived` (which counts concealed samples too), polled every 50 ms. See
`longest_concealment_ms` for how a gap's length is estimated from the polls.

Processes (`browser_processes`): Playwright does not say which processes are a browser's, so
each Chromium gets its own `--user-data-dir`; the browser process is the one whose command
line has it, and its descendants are its renderers, GPU, network and utility processes
(their `--type=` says which).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.nat_browser import NOTE_PRESENTED_FRAMES, PAGE_STATS

AUDIO_RATE = 48000
POLL_S = 0.05
FULLY_CONCEALED = 0.95  # a poll interval this concealed is concealment from end to end
WAIT_MS = 15_000

# Chromium's fake camera at 24 fps (its default is 20); the rest as the e2e tests have it.
ARGS = [("--use-fake-device-for-media-stream=fps=24"
         if arg == "--use-fake-device-for-media-stream" else arg) for arg in CHROMIUM_ARGS]

# Before caller.js runs: its getUserMedia asks for exactly 640x480@24 video, and the track's
# contentHint "detail" makes Chromium keep the resolution when it has to send less (it lowers
# the frame rate instead), so that every answerer decodes 640x480.
CONSTRAIN_VIDEO = """(() => {
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => {
    const stream = await gum(c && c.video
      ? { ...c, video: { width: { exact: %d }, height: { exact: %d }, frameRate: { exact: %d } } }
      : c);
    stream.getVideoTracks().forEach((t) => { t.contentHint = "detail"; });
    return stream;
  };
})();"""

# What the page sends: outbound video frames and size (the call's current connection).
OUTBOUND_STATS = """async () => {
  const pc = typeof call !== "undefined" && call ? call.pc : null;
  if (!pc) return null;
  const s = { now: performance.now(), video: {}, availableOutgoingBitrate: null };
  const report = await pc.getStats();
  report.forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "video") {
      s.video = { framesSent: r.framesSent ?? 0, framesEncoded: r.framesEncoded ?? 0,
                  frameWidth: r.frameWidth ?? 0, frameHeight: r.frameHeight ?? 0,
                  framesPerSecond: r.framesPerSecond ?? 0, bytesSent: r.bytesSent ?? 0,
                  targetBitrate: r.targetBitrate ?? null,
                  qualityLimitationReason: r.qualityLimitationReason ?? null };
    } else if (r.type === "transport" && r.selectedCandidatePairId) {
      const pair = report.get(r.selectedCandidatePairId);
      if (pair) s.availableOutgoingBitrate = pair.availableOutgoingBitrate ?? null;
    }
  });
  return s;
}"""

# Inbound audio only, cheap enough to poll every 50 ms.
AUDIO_STATS = """async () => {
  const pc = typeof call !== "undefined" && call ? call.pc : null;
  if (!pc) return null;
  let a = null;
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      a = [performance.now(), r.concealedSamples ?? 0, r.totalSamplesReceived ?? 0,
           r.concealmentEvents ?? 0];
    }
  });
  return a;
}"""


@contextlib.asynccontextmanager
async def chromium(playwright: Any, profile: Path, video: tuple[int, int, int]
                   ) -> AsyncIterator[Any]:
    """A Chromium (its own profile directory, so its processes can be found) whose caller page
    sends `video` (width, height, fps). Closed afterwards: Playwright ends its processes."""
    context = await playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=ARGS)
    try:
        await context.add_init_script(CONSTRAIN_VIDEO % video)
        yield context
    finally:
        await context.close()


async def open_page(context: Any, url: str) -> Any:
    """The caller page at `url`, signed in, noting its remote <video>'s presented frames."""
    page = context.pages[0] if context.pages else await context.new_page()
    await page.goto(url)
    await page.wait_for_function("window.caller.signedIn", timeout=WAIT_MS)
    await page.evaluate(NOTE_PRESENTED_FRAMES)
    return page


async def place_call(page: Any, callee: str) -> None:
    """Click "Video call" to `callee`; return once the page is connected."""
    await page.fill("#callee", callee)
    await page.click("#video-call")
    await page.wait_for_function("window.caller.state === 'connected'", timeout=WAIT_MS)


async def hang_up(page: Any) -> None:
    if await page.evaluate("window.caller.state") != "idle" and \
            await page.is_enabled("#hangup"):
        await page.click("#hangup")


async def wait_for_video(page: Any, frames: int = 24, timeout_ms: int = WAIT_MS) -> None:
    """Until the page has decoded `frames` frames of the remote video."""
    await page.wait_for_function(
        f"""async () => {{
          const pc = typeof call !== "undefined" && call ? call.pc : null;
          if (!pc) return false;
          let n = 0;
          (await pc.getStats()).forEach((r) => {{
            if (r.type === "inbound-rtp" && r.kind === "video") n = r.framesDecoded || 0;
          }});
          return n >= {frames};
        }}""", timeout=timeout_ms, polling=100)


def longest_concealment_ms(polls: Sequence[tuple[float, int, int]],
                           rate: int = AUDIO_RATE) -> float:
    """The longest stretch of continuous concealment (ms), estimated from polls of
    (time, concealedSamples, totalSamplesReceived).

    Between two polls only the amounts are known, not where in the interval the concealment
    fell. A gap that spans several intervals conceals all of the ones inside it; so a run goes
    on through fully concealed intervals (>= 95 % of the samples played) and ends with the
    first one that is not. A partly concealed interval both ends a run (its concealment may
    be at its start) and starts one (or at its end). Each real gap is thus within a run, and
    a run is at most one interval's worth longer than the gap at each end: an upper bound
    good to about the poll interval.
    """
    longest = run = 0
    for (_, c0, t0), (_, c1, t1) in pairwise(polls):
        concealed, played = c1 - c0, t1 - t0
        if concealed <= 0:
            longest, run = max(longest, run), 0
        elif played > 0 and concealed >= FULLY_CONCEALED * played:
            run += concealed
        else:
            longest = max(longest, run + concealed)
            run = concealed
    return round(max(longest, run) * 1000 / rate, 1)


class AudioGapPoller:
    """The page's received-audio concealment, polled every POLL_S while it runs."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.polls: list[tuple[float, int, int, int]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while True:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                sample = await self.page.evaluate(AUDIO_STATS)
                if sample:
                    self.polls.append((sample[0] / 1000, *sample[1:]))
            await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - started)))

    def cancel(self) -> None:
        """Stop polling, if it still does (on the way out of a failed measurement)."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        polls = self.polls
        if len(polls) < 2:
            return {"error": "fewer than two getStats polls of the received audio"}
        (_, c0, s0, e0), (_, c1, s1, e1) = polls[0], polls[-1]
        intervals = [b[0] - a[0] for a, b in pairwise(polls)]
        return {
            "concealed_pct": round(100 * (c1 - c0) / (s1 - s0), 2) if s1 > s0 else None,
            "longest_concealment_ms": longest_concealment_ms([p[:3] for p in polls]),
            "concealment_events": e1 - e0,
            "polls": len(polls),
            "poll_interval_ms_max": round(max(intervals) * 1000, 1),
        }


async def inbound(page: Any) -> dict[str, Any] | None:
    """nat_browser's PAGE_STATS: the page's inbound video and audio counts."""
    return await page.evaluate(PAGE_STATS)


async def outbound(page: Any) -> dict[str, Any] | None:
    return await page.evaluate(OUTBOUND_STATS)


def page_window(before_in: dict[str, Any], after_in: dict[str, Any],
                before_out: dict[str, Any] | None, after_out: dict[str, Any] | None
                ) -> dict[str, Any]:
    """What the page received (from the answerer) and sent over a window, from getStats."""
    elapsed = (after_in["now"] - before_in["now"]) / 1000

    def grew(kind: str, key: str) -> float:
        return float(after_in[kind].get(key, 0) - before_in[kind].get(key, 0))
    out: dict[str, Any] = {
        "connection": after_in["connectionState"],
        "received_fps": round(grew("video", "framesDecoded") / elapsed, 1),
        "received_size": [after_in["video"].get("frameWidth"),
                          after_in["video"].get("frameHeight")],
        "received_audio_concealed_pct": round(100 * grew("audio", "concealedSamples")
                                              / grew("audio", "totalSamplesReceived"), 2)
        if grew("audio", "totalSamplesReceived") else None,
    }
    if before_out and after_out and after_out["video"]:
        sent_s = (after_out["now"] - before_out["now"]) / 1000
        out["sent_fps"] = round((after_out["video"]["framesSent"]
                                 - before_out["video"]["framesSent"]) / sent_s, 1)
        out["sent_size"] = [after_out["video"]["frameWidth"], after_out["video"]["frameHeight"]]
        out["sent_quality_limitation"] = after_out["video"]["qualityLimitationReason"]
        out["sent_kbps"] = round((after_out["video"]["bytesSent"]
                                  - before_out["video"]["bytesSent"]) * 8 / sent_s / 1000)
        # What the page's bandwidth estimate allowed at the end (the answerer's REMB or
        # transport-cc feedback): a low one makes Chromium drop frames to keep 640x480.
        target = after_out["video"]["targetBitrate"]
        out["sent_target_kbps"] = round(target / 1000) if target else None
        available = after_out["availableOutgoingBitrate"]
        out["available_outgoing_kbps"] = round(available / 1000) if available else None
    return out


# -- a browser's processes -----------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def _cmdline(pid: int) -> list[str]:
    """A process's arguments. Chromium's child processes rewrite their argv as one string
    (spaces between the arguments): split on both."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").split()
    except OSError:
        return []


def browser_processes(profile: Path) -> dict[int, str]:
    """{pid: kind} of the Chromium using `profile`: "browser" and its descendants by their
    --type ("renderer", "gpu-process", "utility:<sub-type>", "zygote", ...)."""
    flag = f"--user-data-dir={profile}"
    roots = [int(p) for p in os.listdir("/proc") if p.isdigit()
             and flag in _cmdline(int(p)) and not any(a.startswith("--type=")
                                                      for a in _cmdline(int(p)))]
    if not roots:
        return {}
    children = _children()
    kinds: dict[int, str] = {}
    todo = [roots[0]]
    while todo:
        pid = todo.pop()
        args = _cmdline(pid)
        kind = next((a.split("=", 1)[1] for a in args if a.startswith("--type=")), "browser")
        sub = next((a.split("=", 1)[1] for a in args if a.startswith("--utility-sub-type=")),
                   None)
        kinds[pid] = f"{kind}:{sub}" if sub else kind
        todo += children.get(pid, [])
    return kinds
