"""Headless Chromium on the caller page inside a namespace of the NAT topology, and what the
receiving end of a call shows over a measuring window.

`chromium_in(playwright, namespace, folder)` launches Debian's Chromium (Playwright drives it
over a pipe) through a small wrapper script that runs it with `ip netns exec`, so its sockets
(Socket.IO, ICE, TURN) are made in that namespace. The page comes from the relay on
http://203.0.113.10, which is not a secure context: Chromium is told to treat that origin as
one (`--unsafely-treat-insecure-origin-as-secure`) so that the camera API is there.
`caller_page_url` gives the page TURN (`?ice=`), as a web app gives its browsers.

Measuring (`receiving_end` for a page, `KioskSampler` for kioskd): frames decoded and
rendered per second, freezes (gaps of more than 200 ms between frames on screen: on the page
the presentation times of `requestVideoFrameCallback` on its remote <video>, on the kiosk
its screen's rendered-frame count read every 25 ms over the control socket), and audio
concealment (the page: getStats' concealedSamples / totalSamplesReceived; the kiosk: the
samples its decoder gave out against the 48 kHz clock, as it keeps no concealment count).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.nat import Namespace, NatTopology

FREEZE_S = 0.2  # a gap longer than this between frames on screen is a freeze
AUDIO_RATE = 48000
SAMPLE_EVERY_S = 0.025  # the kiosk's status, read this often while measuring


@contextlib.asynccontextmanager
async def chromium_in(playwright: Any, namespace: Namespace, folder: Path,
                      origin: str) -> AsyncIterator[Any]:
    """A persistent Chromium context whose browser runs in `namespace`; closed afterwards
    (Playwright ends the process it started)."""
    wrapper = folder / f"chromium-in-{namespace.name}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    context = await playwright.chromium.launch_persistent_context(
        str(folder / f"profile-{namespace.name}"), executable_path=str(wrapper), headless=True,
        args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"])
    try:
        yield context
    finally:
        await context.close()


def caller_page_url(net: NatTopology, token: str, **params: str) -> str:
    """The relay's caller page signed in with `token`, with TURN over UDP (coturn's
    time-limited credentials, as the web app's backend would hand out)."""
    from kioskd.rtc.ice import rest_credential

    username, credential = rest_credential(net.turn_secret, time.time(), name=token)
    ice = [{"urls": net.turn_url("udp"), "username": username, "credential": credential}]
    return f"{net.relay_url}/?{urlencode({'token': token, 'ice': json.dumps(ice), **params})}"


async def open_page(context: Any, url: str) -> Any:
    """The caller page at `url`, signed in, its remote <video>'s frames being noted."""
    page = context.pages[0] if context.pages else await context.new_page()
    await page.goto(url)
    await page.wait_for_function("window.caller.signedIn", timeout=15_000)
    await page.evaluate(NOTE_PRESENTED_FRAMES)
    return page


# Every frame the remote <video> presents, by its presentation time (performance.now() ms).
NOTE_PRESENTED_FRAMES = """() => {
  const video = document.getElementById("remote");
  window.caller.presented = [];
  const onFrame = (_, meta) => {
    window.caller.presented.push(meta.presentationTime);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}"""

# The current call's inbound numbers from getStats(), and the candidate types (local,
# remote) of the pair in use. `call` is caller.js's own (a top-level binding of the page's script).
PAGE_STATS = """async () => {
  const pc = typeof call !== "undefined" && call ? call.pc : null;
  if (!pc) return null;
  const report = await pc.getStats();
  const s = { connectionState: pc.connectionState, now: performance.now(), video: {},
              audio: {}, pair: null };
  const pick = (r, keys) => Object.fromEntries(keys.map((k) => [k, r[k] ?? 0]));
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      s.video = pick(r, ["framesDecoded", "framesReceived", "framesDropped", "freezeCount",
                         "totalFreezesDuration", "packetsLost", "packetsReceived", "nackCount",
                         "pliCount", "jitterBufferDelay", "jitterBufferEmittedCount",
                         "frameWidth", "frameHeight"]);
    } else if (r.type === "inbound-rtp" && r.kind === "audio") {
      s.audio = pick(r, ["concealedSamples", "totalSamplesReceived", "concealmentEvents",
                         "packetsLost", "packetsReceived"]);
    } else if (r.type === "transport" && r.selectedCandidatePairId) {
      const pair = report.get(r.selectedCandidatePairId);
      const type = (id) => (report.get(id) || {}).candidateType;
      if (pair) s.pair = [type(pair.localCandidateId), type(pair.remoteCandidateId)];
    }
  });
  return s;
}"""


async def page_stats(page: Any) -> dict[str, Any] | None:
    stats: dict[str, Any] | None = await page.evaluate(PAGE_STATS)
    return stats


def freezes(times: list[float]) -> dict[str, Any]:
    """Gaps of more than FREEZE_S between consecutive frame times (seconds)."""
    gaps = [b - a for a, b in pairwise(times) if b - a > FREEZE_S]
    return {"count": len(gaps), "total_s": round(sum(gaps), 2),
            "longest_s": round(max(gaps), 2) if gaps else 0.0}


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


async def receiving_end(page: Any, seconds: float) -> dict[str, Any]:
    """What the page received and showed over the next `seconds` (a sleep that holds the
    call for the window)."""
    before = await page_stats(page)
    await asyncio.sleep(seconds)
    after = await page_stats(page)
    presented = await page.evaluate("window.caller.presented")
    if before is None or after is None:
        return {"error": "no call on the page", "connection": after and after["connectionState"]}
    elapsed = (after["now"] - before["now"]) / 1000
    times = [t / 1000 for t in presented if before["now"] <= t <= after["now"]]

    def grew(kind: str, key: str) -> float:
        return float(after[kind].get(key, 0) - before[kind].get(key, 0))
    emitted = grew("video", "jitterBufferEmittedCount")
    return {
        "window_s": round(elapsed, 1),
        "connection": after["connectionState"],
        "candidate_pair": after["pair"],  # [local type, remote type]
        "decoded_fps": round(grew("video", "framesDecoded") / elapsed, 1),
        "rendered_fps": round(len(times) / elapsed, 1),
        "freezes": freezes(times),
        "getstats_freezes": {"count": int(grew("video", "freezeCount")),
                             "total_s": round(grew("video", "totalFreezesDuration"), 2)},
        "video_size": [after["video"].get("frameWidth"), after["video"].get("frameHeight")],
        "video_packets_lost": int(grew("video", "packetsLost")),
        "nacks_sent": int(grew("video", "nackCount")),
        "plis_sent": int(grew("video", "pliCount")),
        "video_jitter_buffer_ms": round(grew("video", "jitterBufferDelay") / emitted * 1000, 1)
        if emitted else None,
        "audio_concealed": _ratio(grew("audio", "concealedSamples"),
                                  grew("audio", "totalSamplesReceived")),
        "audio_packets_lost": int(grew("audio", "packetsLost")),
        "audio_packets_received": int(grew("audio", "packetsReceived")),
    }


@dataclass
class KioskSampler:
    """kioskd's call media counts read every SAMPLE_EVERY_S over its control socket:
    (time, rendered frames, decoded video frames, audio samples)."""

    kiosk: Any
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    path_lost_seen: bool = False  # the kiosk said "reconnecting" at some sample

    async def sample_for(self, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        await self._sample()
        while time.monotonic() < deadline:
            await asyncio.sleep(SAMPLE_EVERY_S)
            await self._sample()
        return self.report()

    async def _sample(self) -> None:
        status = await self.kiosk.status()
        call = status.get("call") or {}
        media = call.get("media") or {}
        self.last = {"state": status["state"], **media}
        self.path_lost_seen |= bool(call.get("reconnecting"))
        self.samples.append((time.monotonic(), media.get("rendered_frames", 0),
                             media.get("video_frames", 0), media.get("audio_samples", 0)))

    def report(self) -> dict[str, Any]:
        (t0, rendered0, decoded0, audio0), (t1, rendered1, decoded1, audio1) = \
            self.samples[0], self.samples[-1]
        elapsed = t1 - t0
        # When the rendered count went up: the times of frames on screen, to within a sample.
        shown = [t for (_, previous, _, _), (t, count, _, _) in pairwise(self.samples)
                 if count > previous]
        last = self.last
        return {
            "window_s": round(elapsed, 1),
            "state": last.get("state"),
            "path_lost_seen": self.path_lost_seen,
            "decoded_fps": round((decoded1 - decoded0) / elapsed, 1),
            "rendered_fps": round((rendered1 - rendered0) / elapsed, 1),
            "freezes": freezes(shown),
            "video_size": last.get("video_size"),
            "audio_samples_vs_clock": _ratio(audio1 - audio0, elapsed * AUDIO_RATE),
            # The far end's receiver reports: packets the kiosk sent that it lost, whole call.
            "sent_packets_lost_far_end": last.get("packets_lost"),
            "capture_to_screen_ms": {"p50": last.get("screen_latency_ms_p50"),
                                     "p95": last.get("screen_latency_ms_p95")},
        }
