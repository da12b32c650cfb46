"""Capture-to-screen latency: the caller's synthetic camera stamps each frame with its capture
time; the kiosk reads the stamp back just after the frame is on its screen (a window on Xvfb).

The kiosk runs as it does on a device, `python -m kioskd` in its own process (the shipped
config file, display.mode=window on a private 1280x720 Xvfb, sending its own synthetic camera
and tone back); a ScriptedCaller (aiortc) in this process calls it through a relay here.
After `--settle` seconds (3) of call, `--seconds` (15) are measured; then the kiosk's status
(what `kioskctl --json status` reads) gives the percentiles, which the screen keeps over its
last 300 frames (12.5 s at 24 fps, 10 s at 30 fps: all inside the measured window).
Capture-to-decoded (the kiosk's sink, before the screen) is over the whole call.

Prints one JSON line with p50/p95 at 640x480@24 and 1280x720@30. Runs inside a private
loopback-only network namespace.

    .venv/bin/python -m bench.latency [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform

from tests.support import netns
from tests.support.xvfb import running_xvfb

SIZES = [(640, 480, 24), (1280, 720, 30)]


async def measure(width: int, height: int, fps: int, settle: float, seconds: float) -> dict:
    from bench.cpu_per_call_second import KioskdProcess, cpu_seconds, started
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS
    from tests.support.caller import ScriptedCaller

    async with running_relay(TOKENS) as relay:
        kiosk = KioskdProcess(relay.url, "display.mode=window", f"video.width={width}",
                              f"video.height={height}", f"video.fps={fps}")
        async with started(kiosk):
            caller = ScriptedCaller(relay.url, "alice-secret", video=(width, height, fps))
            await caller.connect()
            try:
                await caller.call(kiosk.peer, "video")
                await caller.receive_answer()
                await asyncio.wait_for(caller.connected.wait(), 15)
                await caller.sink.wait_for_frames(video=fps, timeout=15)
                await asyncio.sleep(settle)  # not measured
                before = (await kiosk.status())["call"]["media"]
                cpu_before = cpu_seconds(kiosk.pid)
                await asyncio.sleep(seconds)  # the measuring window itself
                media = (await kiosk.status())["call"]["media"]
                cpu = cpu_seconds(kiosk.pid) - cpu_before
            finally:
                await caller.close()
    return {
        "size": f"{width}x{height}@{fps}",
        "capture_to_screen_ms": {"p50": media["screen_latency_ms_p50"],
                                 "p95": media["screen_latency_ms_p95"]},
        "capture_to_decode_ms": {"p50": media["latency_ms_p50"],
                                 "p95": media["latency_ms_p95"]},
        "rendered_fps": round((media["rendered_frames"] - before["rendered_frames"]) / seconds,
                              1),
        "received_fps": round((media["video_frames"] - before["video_frames"]) / seconds, 1),
        "kiosk_cpu_s_per_s": round(cpu / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--settle", type=float, default=3)
    args = parser.parse_args()
    netns.run_module_inside("bench.latency")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        results = [asyncio.run(measure(w, h, fps, args.settle, args.seconds))
                   for w, h, fps in SIZES]
    print(json.dumps({"bench": "latency", "kiosk": "python -m kioskd (own process), "
                      "display.mode=window on a 1280x720 Xvfb", "results": results,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
