"""Capture-to-screen latency: the caller's synthetic camera stamps each frame with its capture
time; the kiosk reads the stamp back just after the frame is on its screen (a window on Xvfb).

Prints one JSON line with p50/p95 at 640x480@24 and 1280x720@30, plus capture-to-decode for
comparison. Runs inside a private loopback-only network namespace.

    .venv/bin/python -m bench.latency [--seconds 10]
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


async def measure(width: int, height: int, fps: int, seconds: float) -> dict:
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS, connected_call, running_kiosk
    from tests.support.caller import ScriptedCaller

    async with running_relay(TOKENS) as relay:
        async with running_kiosk(relay.url, "display.mode=window") as kiosk:
            caller = ScriptedCaller(relay.url, "alice-secret", video=(width, height, fps))
            await caller.connect()
            await connected_call(kiosk, caller)
            sink = kiosk.media.sink
            await sink.wait_for_rendered(fps, timeout=15)  # settle: first second not counted
            sink.screen_latencies_ms.clear()
            sink.latencies_ms.clear()
            rendered, received = sink.rendered_frames, sink.video_frames
            await asyncio.sleep(seconds)  # the measuring window itself, not synchronisation
            stats = sink.stats()
            await caller.close()
    return {
        "size": f"{width}x{height}@{fps}",
        "capture_to_screen_ms": {"p50": stats["screen_latency_ms_p50"],
                                 "p95": stats["screen_latency_ms_p95"]},
        "capture_to_decode_ms": {"p50": stats["latency_ms_p50"],
                                 "p95": stats["latency_ms_p95"]},
        "rendered_fps": round((stats["rendered_frames"] - rendered) / seconds, 1),
        "received_fps": round((stats["video_frames"] - received) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    netns.run_module_inside("bench.latency")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        results = [asyncio.run(measure(w, h, fps, args.seconds)) for w, h, fps in SIZES]
    print(json.dumps({"bench": "latency", "display": "Xvfb 1280x720 window", "results": results,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
