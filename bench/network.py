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
  call connected.

Runs inside a private network namespace (re-executes itself there); needs root and coturn.
No browser in the kiosk's place yet (see bench/README.md).

    .venv/bin/python -m bench.network [--calls 5]
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


async def run(calls: int) -> dict[str, Any]:
    from tests.support.nat import caller_in, nat_topology, place_call, running_kioskd

    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "path": "kiosk -> bridge -> NAT -> coturn (203.0.113.10) <- NAT <- caller",
        "browser_in_kiosk_place": "not measured",
    }
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        folder = Path(tmp)
        with nat_topology(folder) as net:
            report["setup_s"] = {}
            for transport in ("udp", "tcp"):
                sub = folder / transport
                sub.mkdir()
                report["setup_s"][f"turn_{transport}"] = await set_up_times(net, sub, transport,
                                                                           calls)
            sub = folder / "impaired"
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
    args = parser.parse_args()
    netns.run_module_inside("bench.network")
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(run(args.calls))))


if __name__ == "__main__":
    main()
