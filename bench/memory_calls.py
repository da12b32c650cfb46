"""Resident memory of a kioskd process over many consecutive short calls.

A `python -m kioskd --config config/kioskd.toml --set ...` process (display.mode=window, a
1280x720 window on a private Xvfb, as a kiosk with a screen runs) answers `--calls` (200)
calls one after the other from a ScriptedCaller in this process. Each call: offer, answer,
connected, the kiosk's video reaches the caller (3 frames), the caller hangs up, and the next
call starts only once the daemon has logged "ending -> idle". Video is 320x240@15 both ways
to keep the run short (about a second a call), which is small: per-call leaks of Python
objects, sessions, tracks and threads show the same, but buffers that scale with the picture
would be under-counted by this size.

VmRSS is read from /proc/<pid>/status after the daemon is back to idle and has been left alone
for `--settle` seconds (2): before the first call, after calls 1, 50 and 200, and every 25
calls for the trend. The kiosk's received frames are checked at each checkpoint through its
control socket (what `kioskctl --json status` reads).

RSS moves by several MB from one run to the next (native allocations settle at a different
call each time), so the whole thing is done `--repeats` (3) times, each with a fresh kioskd
process, and the median is reported beside each process's numbers. Prints one JSON line with
MB at each checkpoint, the growth from call 50 to call 200 (the target is at most 5 MB), and
from call 100 to 200 (the slope once settled). Runs inside a private loopback-only network
namespace (re-executes itself there).

    .venv/bin/python -m bench.memory_calls [--calls 200] [--repeats 3]

kioskd itself runs gc.collect() and glibc's malloc_trim(0) after each call
(`kioskd.memory`); `--kiosk-set` passes more settings to it.
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
from typing import Any

from bench.cpu_per_call_second import KioskdProcess, rss_mb, started
from tests.support import netns
from tests.support.xvfb import running_xvfb

VIDEO = (320, 240, 15)
REPORTED = (1, 50, 200)
TREND_EVERY = 25
IDLE_LINE = r": ending -> idle"


async def one_call(kiosk: KioskdProcess, caller) -> None:
    await caller.call(kiosk.peer, "video")
    await caller.receive_answer()
    await asyncio.wait_for(caller.connected.wait(), 15)
    await caller.sink.wait_for_frames(video=3, timeout=15)  # the kiosk's video is flowing
    await caller.hangup()
    await kiosk.wait_for_log(IDLE_LINE, timeout=15)


async def one_process(relay_url: str, calls: int, settle: float,
                      kiosk_sets: tuple[str, ...]) -> dict[str, Any]:
    """One fresh kioskd process through `calls` calls: RSS at each checkpoint."""
    from tests.support.caller import ScriptedCaller

    width, height, fps = VIDEO
    checkpoints = sorted({n for n in REPORTED if n <= calls}
                         | set(range(TREND_EVERY, calls + 1, TREND_EVERY)))
    rss: dict[int, float] = {}
    frames_at_kiosk: set[int] = set()
    kiosk = KioskdProcess(relay_url, "display.mode=window", f"video.width={width}",
                          f"video.height={height}", f"video.fps={fps}", *kiosk_sets)
    async with started(kiosk):
        caller = ScriptedCaller(relay_url, "alice-secret", video=VIDEO)
        await caller.connect()
        try:
            await asyncio.sleep(settle)  # settle: not measured
            rss[0] = rss_mb(kiosk.pid)
            for n in range(1, calls + 1):
                await one_call(kiosk, caller)
                if n in checkpoints:
                    await asyncio.sleep(settle)  # settle: not measured
                    rss[n] = rss_mb(kiosk.pid)
                    status = await kiosk.status()
                    if status["state"] != "idle":
                        raise RuntimeError(f"kioskd is {status['state']} after call {n}")
                    frames_at_kiosk.add(status["last_call"]["media"].get("video_frames"))
            finished = (await kiosk.status())["calls_finished"]
        finally:
            await caller.close()
    growth = round(rss[200] - rss[50], 1) if 200 in rss and 50 in rss else None
    late = round(rss[200] - rss[100], 1) if 200 in rss and 100 in rss else None
    return {
        "rss_mb": {"before_first_call": round(rss[0], 1),
                   **{f"after_call_{n}": round(rss[n], 1) for n in REPORTED if n in rss}},
        "growth_mb_call_50_to_200": growth,
        "growth_mb_call_100_to_200": late,
        "trend_rss_mb": {str(n): round(rss[n], 1) for n in sorted(rss)},
        "calls_finished_by_kioskd": finished,
        "kiosk_received_frames_per_call": sorted(frames_at_kiosk),
    }


async def run(calls: int, settle: float, repeats: int,
              kiosk_sets: tuple[str, ...]) -> dict[str, Any]:
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS

    width, height, fps = VIDEO
    started_at = time.monotonic()
    async with running_relay(TOKENS) as relay:
        processes = [await one_process(relay.url, calls, settle, kiosk_sets)
                     for _ in range(repeats)]
    elapsed = time.monotonic() - started_at

    def median_of(key: str) -> float | None:
        values = [p[key] for p in processes if p[key] is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        "bench": "memory_calls",
        "calls": calls,
        "processes": repeats,
        "growth_mb_call_50_to_200": {"median": median_of("growth_mb_call_50_to_200"),
                                     "each": [p["growth_mb_call_50_to_200"]
                                              for p in processes]},
        "growth_mb_call_100_to_200": {"median": median_of("growth_mb_call_100_to_200"),
                                      "each": [p["growth_mb_call_100_to_200"]
                                               for p in processes]},
        "rss_mb_median": {key: round(statistics.median(p["rss_mb"][key] for p in processes), 1)
                          for key in processes[0]["rss_mb"]},
        "per_process": processes,
        "video": f"{width}x{height}@{fps} both ways (small, to go fast)",
        "kioskd": "python -m kioskd, display.mode=window 1280x720 on Xvfb"
                  + (f", with --set {' --set '.join(kiosk_sets)}" if kiosk_sets else ""),
        "runtime_s": round(elapsed, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh kioskd processes, one after the other")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds left idle before each RSS reading")
    parser.add_argument("--kiosk-set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more --set for kioskd, e.g. display.mode=none")
    args = parser.parse_args()
    netns.run_module_inside("bench.memory_calls")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        print(json.dumps(asyncio.run(run(args.calls, args.settle, args.repeats,
                                          tuple(args.kiosk_set)))))


if __name__ == "__main__":
    main()
