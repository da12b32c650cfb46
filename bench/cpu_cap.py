"""The kiosk in a call with its CPU capped: does it shed video and keep audio?

For each cap of `--caps` (percent of one core; 100,60,35), a fresh `python -m kioskd` (the
shipped config with display.mode=window on a private Xvfb, 640x480@24 both ways, the caller's
audio played by its AlsaSpeaker on ALSA's `null` device, which its wall-clock pacer paces) runs
in a cgroup v1 cpu group of its own (`tests/support/cpu_cap.py`: `/sys/fs/cgroup/cpu/kioskd-test-*`,
`cpu.cfs_quota_us` = cap x `cpu.cfs_period_us` = 100000 us). Its PID goes into the group's
`cgroup.procs` right after it is spawned, before it has signed in. The callers (headless
Chromium, the bench process, Xvfb) are not capped.

Per cap:

1. a Chromium call (the caller page in headless Chromium sending 640x480@24, as in
   bench.cpu_per_call_second): after `--settle` s, `--seconds` s are measured:
   - at the kiosk, from its status (what `kioskctl --json status` reads, read every 0.2 s
     over the control socket, which costs the capped kiosk a little): frames received
     (decoded) and rendered per second, the longest time without a new rendered frame, the
     speaker's playout underruns and drops in the window, the longest playout gap (each
     read's share of silent periods among the periods written, times its wall time, see
     `playout_polls`, then chromium_call.longest_concealment_ms: at 0.2 s reads an upper
     bound good to about 0.2 s; an underrun plays silence until 60 ms are buffered again, so
     any underrun is a gap of 60 ms or more), the periods written per second (50 on time)
     and whether the speaker took its device for a clocked one (`null` is not);
   - at the caller page, from getStats: the kiosk's video as received (frames decoded per
     second, size), the received audio's concealment polled every 50 ms (concealed %, the
     longest continuous concealment, concealment events), and what the page sent;
   - the group's `cpu.stat` (periods throttled, throttled time) and the kiosk's CPU use, with
     its threads' share by group (as bench.cpu_per_call_second's `per_thread`);
2. hang up from the page; the seconds until the kiosk is idle again;
3. a second short call (`--check-seconds`, 5 s) from the page: connected, the kiosk's video
   decoded at the page and the caller's rendered by the kiosk; hang up, idle again. A call
   that does not connect, shows no video or does not return to idle is a wedge;
4. capture -> screen: Chromium's camera frames carry no stamp the kiosk can read, so a
   ScriptedCaller (aiortc in the bench process, whose synthetic camera stamps each frame's
   capture time) calls for `--stamped-seconds` (8; 0 skips it) at 640x480@24, and the kiosk's
   screen's p50/p95 over the stamped frames it rendered are read from its status.

Prints one JSON line on stdout and a short table on stderr. Runs inside a private
loopback-only network namespace (re-executes itself there); needs root for the namespace and
the cgroup. Every group made is removed at the end (the kiosk stopped first; should it still
run, it is moved back to the root group before the group is removed).

    .venv/bin/python -m bench.cpu_cap [--caps 100,60,35] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import signal
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.cpu_per_call_second import (
    VIDEO,
    KioskdProcess,
    cpu_seconds,
    python_thread_names,
    thread_split,
    thread_ticks,
)
from tests.support import cpu_cap, netns
from tests.support.xvfb import running_xvfb

STATUS_EVERY_S = 0.2


class CappedKiosk(KioskdProcess):
    """kioskd moved into `group` as soon as it is spawned; slower to start when capped."""

    def __init__(self, relay_url: str, group: cpu_cap.CpuCap, *overrides: str) -> None:
        super().__init__(relay_url, *overrides)
        self.group = group

    async def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        await super()._spawn(argv, env)
        self.group.add(self.pid)

    async def wait_for_log(self, pattern: str, timeout: float = 60.0) -> str:
        return await super().wait_for_log(pattern, timeout)


def playout_polls(rows: list[tuple[float, int, int]]) -> list[tuple[float, float, float]]:
    """The speaker's (time, silent periods, played periods) reads as (time, ms of silence, ms
    of wall time) totals, for longest_concealment_ms at rate 1000.

    The period counts are not a clock: a thread paced wrongly writes far more than 50 periods
    a second, and a starved one none. So each interval's silence is its share of the periods
    written, times the interval's wall time; an interval in which nothing was written at all
    is silence from end to end (nothing reached the device)."""
    out = [(rows[0][0], 0.0, 0.0)]
    for (t0, s0, p0), (t1, s1, p1) in pairwise(rows):
        wall_ms = (t1 - t0) * 1000
        written = (s1 - s0) + (p1 - p0)
        silent_ms = wall_ms * (s1 - s0) / written if written > 0 else wall_ms
        out.append((t1, out[-1][1] + silent_ms, out[-1][2] + wall_ms))
    return out


class StatusSampler:
    """The kiosk's call media counts read every STATUS_EVERY_S: (time, rendered frames,
    decoded frames, speaker silent periods, speaker played periods, underruns, drops)."""

    def __init__(self, kiosk: KioskdProcess) -> None:
        self.kiosk = kiosk
        self.rows: list[tuple[float, int, int, int, int, int, int]] = []
        self.failed_reads = 0
        self.last: dict[str, Any] = {}

    async def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            started = time.monotonic()
            try:
                status = await asyncio.wait_for(self.kiosk.status(), 2)
            except Exception:
                self.failed_reads += 1
            else:
                media = (status.get("call") or {}).get("media") or {}
                speaker = media.get("speaker") or {}
                self.last = {"state": status.get("state"), **media}
                self.rows.append((time.monotonic(), media.get("rendered_frames", 0),
                                  media.get("video_frames", 0),
                                  speaker.get("silent_periods", 0),
                                  speaker.get("played_periods", 0),
                                  speaker.get("playout_underruns", 0),
                                  speaker.get("playout_drops", 0)))
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(max(0.0, min(STATUS_EVERY_S - (time.monotonic() - started),
                                             deadline - time.monotonic())))

    def report(self) -> dict[str, Any]:
        from bench.chromium_call import longest_concealment_ms

        if len(self.rows) < 2:
            return {"error": "fewer than two status reads", "failed_reads": self.failed_reads}
        first, last = self.rows[0], self.rows[-1]
        elapsed = last[0] - first[0]
        shown = [t for previous, (t, count, *_) in pairwise(self.rows) if count > previous[1]]
        still = [b - a for a, b in pairwise([first[0], *shown, last[0]])]
        playout = playout_polls([(t, s, p) for t, _, _, s, p, _, _ in self.rows])
        speaker = self.last.get("speaker") or {}
        return {
            "window_s": round(elapsed, 1),
            "received_fps": round((last[2] - first[2]) / elapsed, 1),
            "rendered_fps": round((last[1] - first[1]) / elapsed, 1),
            "longest_without_new_frame_s": round(max(still), 2),
            "playout_underruns": last[5] - first[5],
            "playout_drops": last[6] - first[6],
            "longest_playout_gap_ms": longest_concealment_ms(playout, rate=1000)
            if speaker else None,
            # 50 on time; more: the playback thread is not paced; fewer: it is starved.
            "periods_written_per_s": round((last[3] + last[4] - first[3] - first[4])
                                           / elapsed, 1),
            "speaker": {k: speaker.get(k) for k in ("device_clocked", "device_error",
                                                     "device_xruns", "dropped_ms",
                                                     "playout_buffer_ms")}
            if speaker else "no speaker in the status (audio.sink not alsa?)",
            "status_reads": len(self.rows),
            "failed_status_reads": self.failed_reads,
        }


async def wait_idle(kiosk: KioskdProcess, timeout: float = 30) -> float | None:
    """Seconds until the kiosk's state is idle, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if (await asyncio.wait_for(kiosk.status(), 2))["state"] == "idle":
                return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.1)
    return None


async def measured_call(kiosk: CappedKiosk, page: Any, seconds: float,
                        settle: float) -> dict[str, Any]:
    from bench import chromium_call as cc

    result: dict[str, Any] = {}
    try:
        await cc.place_call(page, kiosk.peer)
        await cc.wait_for_video(page, frames=VIDEO[2], timeout_ms=30_000)
    except Exception as exc:
        result["error"] = f"no call with video from the kiosk: {exc}".split("\n")[0]
        await cc.hang_up(page)
        return result
    audio = cc.AudioGapPoller(page)
    try:
        await asyncio.sleep(settle)
        caller_in, caller_out = await cc.inbound(page), await cc.outbound(page)
        audio.start()
        sampler = StatusSampler(kiosk)
        threads = thread_ticks(kiosk.pid)
        throttle, cpu, wall = kiosk.group.stat(), cpu_seconds(kiosk.pid), time.monotonic()
        await sampler.run_for(seconds)
        wall = time.monotonic() - wall
        cpu = cpu_seconds(kiosk.pid) - cpu
        throttled = kiosk.group.stat()
        threads_after = thread_ticks(kiosk.pid)
        gaps = await audio.stop()
        caller_in2, caller_out2 = await cc.inbound(page), await cc.outbound(page)
        at_page = cc.page_window(caller_in, caller_in2, caller_out, caller_out2)
        result.update({
            "at_kiosk": sampler.report(),
            "kiosk_to_caller": {"fps": at_page["received_fps"],
                                "size": at_page["received_size"]},
            "far_end_audio": gaps,
            "caller_sent": {"fps": at_page.get("sent_fps"), "size": at_page.get("sent_size"),
                            "kbps": at_page.get("sent_kbps"),
                            "target_kbps": at_page.get("sent_target_kbps"),
                            "available_outgoing_kbps": at_page.get("available_outgoing_kbps"),
                            "quality_limitation": at_page.get("sent_quality_limitation")},
            "caller_connection": at_page["connection"],
            "kiosk_cpu_s_per_s": round(cpu / wall, 3),
            "kiosk_threads": thread_split(threads, threads_after,
                                          await python_thread_names(kiosk.pid), wall,
                                          cpu)["groups"],
            "throttled": {
                "periods": throttled["nr_periods"] - throttle["nr_periods"],
                "throttled_periods": throttled["nr_throttled"] - throttle["nr_throttled"],
                "throttled_s": round((throttled["throttled_time"]
                                      - throttle["throttled_time"]) / 1e9, 2),
            },
        })
    finally:
        audio.cancel()
        await cc.hang_up(page)
    result["hangup_to_idle_s"] = await wait_idle(kiosk)
    return result


async def check_call(kiosk: CappedKiosk, page: Any, seconds: float) -> dict[str, Any]:
    """A second, short call: does the kiosk take it, show it, and go idle after it?"""
    from bench import chromium_call as cc

    out: dict[str, Any] = {"ok": False}
    try:
        await cc.place_call(page, kiosk.peer)
        await cc.wait_for_video(page, frames=VIDEO[2], timeout_ms=30_000)
        before = (await kiosk.status())["call"]["media"].get("rendered_frames", 0)
        await asyncio.sleep(seconds)
        after = (await kiosk.status())["call"]["media"].get("rendered_frames", 0)
        out["rendered_fps"] = round((after - before) / seconds, 1)
    except Exception as exc:
        out["error"] = str(exc).split("\n")[0]
    finally:
        await cc.hang_up(page)
    out["hangup_to_idle_s"] = await wait_idle(kiosk)
    out["ok"] = "error" not in out and out["hangup_to_idle_s"] is not None \
        and out.get("rendered_fps", 0) > 0
    return out


async def stamped_call(kiosk: CappedKiosk, relay_url: str, seconds: float) -> dict[str, Any]:
    """Capture -> screen from a ScriptedCaller's stamped frames."""
    from tests.support.caller import ScriptedCaller

    caller = ScriptedCaller(relay_url, "alice-secret", video=VIDEO)
    out: dict[str, Any] = {}
    await caller.connect()
    try:
        await caller.call(kiosk.peer, "video")
        await caller.receive_answer(timeout=30)
        await asyncio.wait_for(caller.connected.wait(), 30)
        await asyncio.sleep(seconds)
        media = (await kiosk.status())["call"]["media"]
        out = {"p50": media.get("screen_latency_ms_p50"),
               "p95": media.get("screen_latency_ms_p95"),
               "window_s": seconds}
        await caller.hangup()
    except Exception as exc:
        out = {"error": str(exc).split("\n")[0]}
    finally:
        await caller.close()
    await wait_idle(kiosk)
    return out


async def one_cap(percent: float, relay_url: str, page: Any, args: argparse.Namespace,
                  kiosk_sets: tuple[str, ...]) -> dict[str, Any]:
    width, height, fps = VIDEO
    with cpu_cap.cpu_capped(percent / 100) as group:
        kiosk = CappedKiosk(relay_url, group, "display.mode=window", f"video.width={width}",
                            f"video.height={height}", f"video.fps={fps}", "audio.sink=alsa",
                            "audio.playback_device=null", *kiosk_sets)
        row: dict[str, Any] = {"cap_pct": percent}
        try:
            await kiosk.start()
            await asyncio.sleep(2)  # settle after start-up
            row["call"] = await measured_call(kiosk, page, args.seconds, args.settle)
            row["second_call"] = await check_call(kiosk, page, args.check_seconds)
            row["capture_to_screen_ms"] = (
                await stamped_call(kiosk, relay_url, args.stamped_seconds)
                if args.stamped_seconds > 0 else None)
        except Exception as exc:  # this cap's row says so; the next cap still runs
            row["error"] = f"{type(exc).__name__}: {exc}".split("\n")[0]
        finally:
            row["kiosk_alive"] = kiosk.proc is not None and kiosk.proc.returncode is None
            row["kiosk_warnings"] = [line for line in kiosk.log
                                     if "WARNING" in line or "ERROR" in line][-20:]
            # What the speaker found its device to be, each call ("null" is not clocked).
            row["speaker_clock_log"] = [line.split(": ", 1)[-1] for line in kiosk.log
                                        if re.search(r'speaker ".*" is (clocked|not)', line)]
            await kiosk.stop()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'cap':>4} {'rend':>5} {'recv':>5} {'sent':>5} {'far-conc%':>9} {'far-gap':>7} "
            f"{'underr':>6} {'play-gap':>8} {'per/s':>6} {'c2s-p95':>7} {'thrott':>6} {'idle':>5} "
            f"{'2nd':>4}")
    lines = [head]
    for row in rows:
        if "call" not in row:
            lines.append(f"{row['cap_pct']:>3g}% failed: {row.get('error')}")
            continue
        call = row["call"]
        kiosk = call.get("at_kiosk", {})
        far = call.get("far_end_audio", {})
        c2s = row.get("capture_to_screen_ms") or {}

        def f(value: Any, width: int) -> str:
            if isinstance(value, float):
                value = round(value, 1)
            return f"{'-' if value is None else value:>{width}}"
        lines.append(" ".join([
            f(f"{row['cap_pct']:g}%", 4), f(kiosk.get("rendered_fps"), 5),
            f(kiosk.get("received_fps"), 5), f(call.get("kiosk_to_caller", {}).get("fps"), 5),
            f(far.get("concealed_pct"), 9), f(far.get("longest_concealment_ms"), 7),
            f(kiosk.get("playout_underruns"), 6), f(kiosk.get("longest_playout_gap_ms"), 8),
            f(kiosk.get("periods_written_per_s"), 6),
            f(c2s.get("p95"), 7), f(call.get("throttled", {}).get("throttled_s"), 6),
            f(call.get("hangup_to_idle_s"), 5),
            f("yes" if row.get("second_call", {}).get("ok") else "NO", 4)]))
    lines.append("rend/recv: the kiosk's rendered/decoded fps; sent: the kiosk's video decoded "
                 "at Chromium; far-conc%, far-gap: Chromium's audio concealment (%, longest ms); "
                 "underr, play-gap, per/s: the kiosk's playout underruns, longest gap (ms), 20 ms "
                 "periods written per second (50 on time); c2s-p95: "
                 "capture -> screen (ms, stamped call); thrott: s throttled; idle: hang-up -> "
                 "idle (s); 2nd: a second call worked")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from bench import chromium_call as cc
    from bench.cpu_per_call_second import chromium_version
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS

    caps = [float(c) for c in args.caps.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cpu-cap-") as folder:
        async with (running_relay(TOKENS) as relay, async_playwright() as playwright,
                    cc.chromium(playwright, Path(folder) / "caller", VIDEO) as browser):
            page = await cc.open_page(browser, f"{relay.url}/?token=alice-secret")
            for percent in caps:
                rows.append(await one_cap(percent, relay.url, page, args,
                                          tuple(args.kiosk_set)))
    width, height, fps = VIDEO
    print(table(rows), file=sys.stderr)
    return {
        "bench": "cpu_cap",
        "call": f"two-way {width}x{height}@{fps} video + audio; caller: headless Chromium "
                f"{chromium_version()} on the caller page",
        "kioskd": "python -m kioskd, display.mode=window 1280x720 on Xvfb, audio.sink=alsa on "
                  "ALSA's null device, in a cgroup v1 cpu group capped to cap_pct of one core"
                  + (f", with --set {' --set '.join(args.kiosk_set)}" if args.kiosk_set else ""),
        "window_s": args.seconds,
        "results": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--caps", default="100,60,35",
                        help="CPU caps, percent of one core, comma-separated")
    parser.add_argument("--seconds", type=float, default=30, help="measured call seconds")
    parser.add_argument("--settle", type=float, default=3, help="unmeasured call seconds first")
    parser.add_argument("--check-seconds", type=float, default=5,
                        help="length of the second call that checks the kiosk still works")
    parser.add_argument("--stamped-seconds", type=float, default=8,
                        help="length of the ScriptedCaller call for capture -> screen (0: none)")
    parser.add_argument("--kiosk-set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more --set for kioskd")
    args = parser.parse_args()
    if reason := cpu_cap.missing():
        parser.error(reason)
    netns.run_module_inside("bench.cpu_cap")
    # SIGTERM as Ctrl-C: the kiosk is stopped and its group removed on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
