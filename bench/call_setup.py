"""Call set-up time: a browser-like scripted caller calls the kiosk N times.

Prints one JSON line: offer received by the kiosk -> connected (the kiosk's own clock), and
offer sent -> caller connected and -> first remote frame at the kiosk (the caller's clock).
Runs inside a private loopback-only network namespace (re-executes itself there).

    .venv/bin/python -m bench.call_setup [--calls 20]
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

from tests.support import netns


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
            "mean": round(statistics.fmean(values), 1)}


async def run(calls: int) -> dict:
    from kioskd.call.states import State
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS, running_kiosk
    from tests.support.caller import ScriptedCaller

    kiosk_side, caller_connected, first_frame = [], [], []
    async with running_relay(TOKENS) as relay:
        async with running_kiosk(relay.url, "video.width=640", "video.height=480",
                                 "video.fps=24") as kiosk:
            caller = ScriptedCaller(relay.url, "alice-secret")
            await caller.connect()
            for _ in range(calls):
                started = time.monotonic()
                await caller.call("kiosk", "video")
                await caller.receive_answer()
                await asyncio.wait_for(caller.connected.wait(), 15)
                caller_connected.append((time.monotonic() - started) * 1000)
                await kiosk.wait_for_state(State.CONNECTED)
                await kiosk.media.sink.wait_for_frames(video=1, timeout=10)
                first_frame.append((kiosk.media.sink.first_video_at - started) * 1000)
                await caller.hangup()
                await kiosk.wait_for_state(State.IDLE)
                kiosk_side.append(kiosk.last_call["setup_ms"])
            await caller.close()
    return {
        "bench": "call_setup",
        "calls": calls,
        "kiosk_offer_received_to_connected_ms": summary(kiosk_side),
        "caller_offer_sent_to_connected_ms": summary(caller_connected),
        "caller_offer_sent_to_first_frame_at_kiosk_ms": summary(first_frame),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    netns.run_module_inside("bench.call_setup")
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(run(args.calls))))


if __name__ == "__main__":
    main()
