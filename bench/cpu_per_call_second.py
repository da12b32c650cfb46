"""CPU per call second of the answering process: the kiosk beside a plain aiortc answerer (and,
for reference, a Chromium callee), all called by the same caller in one run.

Each answerer runs as its own process, signed in to a relay in this process:

- `kioskd`: `python -m kioskd --config config/kioskd.toml --set ...` with display.mode=window
  (1280x720) on a private Xvfb, sending 640x480@24 (its synthetic camera and tone), rendering
  the caller's video;
- `plain_aiortc`: `python -m bench.plain_answerer` (aiortc's example way of answering; renders
  nothing), sending the same synthetic 640x480@24 pattern and tone;
- `plain_aiortc_green`: the same with `--send green`: aiortc's own dummy tracks (640x480 green at
  30 fps, silence), as in aiortc's examples. Cheaper to encode than a moving picture: shown for
  reference, not the comparison (by default only with `--caller scripted`);
- `chromium` (with the Chromium caller): a second, separate headless Chromium on the caller
  page with `?autoanswer=1`: all its processes, its renderer, and each kind of process.

The caller (`--caller`): `chromium` (default), headless Chromium on the relay's caller page
sending 640x480@24 from its fake camera and microphone (bench/chromium_call.py), or
`scripted`, a ScriptedCaller (aiortc) in this process with synthetic 640x480@24 video and a
tone. After the call connects and settles (`--settle`, 3 s), the answerer's CPU is read from
/proc/<pid>/stat (utime + stime: all its threads) at the start and end of `--seconds` of
connected call (20 s): cpu_s_per_call_s = CPU seconds / wall seconds. Also measured: the
same over 5 s idle before the call, the frame rates each way over the window (the kiosk's
received and rendered frames from its control socket, as `kioskctl --json status` reads them;
the plain answerer's from its SIGUSR1 stats line; the caller page's getStats), each thread's
CPU grouped by its Python name (`per_thread`), the audio concealment at the Chromium caller,
and the video codec negotiated.

Answerers run one after the other, `--rounds` times (2), in the same run. Prints one JSON line.
Runs inside a private loopback-only network namespace (re-executes itself there).

    .venv/bin/python -m bench.cpu_per_call_second [--seconds 20] [--rounds 2]

With `--profile DIR` it also runs `py-spy record --nonblocking` on each answerer in the window
(`pip install py-spy`); py-spy's sampling costs the answerer some CPU, so the numbers of such
a run are marked and are not for comparison.
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
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.support import netns
from tests.support.xvfb import running_xvfb

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = ROOT / "config" / "kioskd.toml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PLAIN_TOKEN = "plain-secret"
VIDEO = (640, 480, 24)
ANSWERERS = ("kioskd", "plain_aiortc", "plain_aiortc_green", "chromium")
# Measured unless --only says otherwise, by caller.
DEFAULT_ANSWERERS = {"chromium": ("kioskd", "plain_aiortc", "chromium"),
                     "scripted": ("kioskd", "plain_aiortc", "plain_aiortc_green")}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (2**20 bytes)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (comm, utime + stime in clock ticks)} of each thread of a process."""
    ticks: dict[int, tuple[str, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                text = stat.read()
        except OSError:  # ended meanwhile
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        ticks[int(tid)] = (comm, int(fields[11]) + int(fields[12]))
    return ticks


async def python_thread_names(pid: int) -> dict[int, str]:
    """{tid: Python thread name} from `py-spy dump --nonblocking` ("Thread <tid> (...):
    "name""); empty if py-spy is not there. Threads with no Python frames (a codec's own
    threads, SDL's) are not in it."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    try:
        dump = await asyncio.create_subprocess_exec(
            py_spy, "dump", "--pid", str(pid), "--nonblocking",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    except FileNotFoundError:
        return {}
    out, _ = await asyncio.wait_for(dump.communicate(), 30)
    return {int(tid): name for tid, name in
            re.findall(r'^Thread (\d+) \([^)]*\): "(.*)"$', out.decode(errors="replace"),
                       re.MULTILINE)}


def thread_group(name: str | None) -> str:
    """The group a thread's CPU is reported under, by its Python thread name (None: a thread
    that runs no Python)."""
    if name is None:
        return "native (no Python frames)"
    lowered = name.lower()
    if name == "MainThread":
        return "MainThread"
    if name.startswith("asyncio_"):
        return "asyncio executor"
    if name == "screen":
        return "screen"
    if "decod" in lowered and "video" in lowered:
        return "video-decoder"
    if "decod" in lowered and "audio" in lowered:
        return "audio-decoder"
    if name.startswith("alsa "):  # the kiosk's speaker and microphone threads
        return "alsa"
    return "other"


def thread_split(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]],
                 names: dict[int, str], wall: float, total_cpu_s: float) -> dict[str, Any]:
    """CPU seconds per wall second of each group of threads over a window, and of each thread
    by name. A thread started in the window counts from zero; one that ended in it is lost,
    which `unaccounted` (the process's total minus the threads') shows."""
    per_thread: dict[str, float] = {}
    groups: dict[str, float] = {}
    for tid, (comm, ticks) in after.items():
        used = (ticks - before.get(tid, (comm, 0))[1]) / CLK_TCK
        name = names.get(tid)
        label = name if name is not None else f"[{comm}]"
        per_thread[label] = per_thread.get(label, 0.0) + used
        group = thread_group(name)
        groups[group] = groups.get(group, 0.0) + used
    counted = sum(groups.values())
    return {
        "groups": {k: round(v / wall, 3) for k, v in
                   sorted(groups.items(), key=lambda item: -item[1])},
        "threads": {k: round(v / wall, 3) for k, v in
                    sorted(per_thread.items(), key=lambda item: -item[1]) if v > 0},
        "unaccounted": round((total_cpu_s - counted) / wall, 3),
        "named_by": "py-spy dump" if names else "nothing (py-spy missing): [comm] only",
    }


class AnswererProcess:
    """A child process whose stderr is always drained (a full pipe would stall it)."""

    name = "answerer"
    peer = ""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.log: deque[str] = deque(maxlen=200)
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self._drain: asyncio.Task | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self._drain = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.log.append(text)
            self.lines.put_nowait(text)

    async def wait_for_log(self, pattern: str, timeout: float = 15.0) -> str:
        """The next stderr line matching `pattern` (a regex)."""
        async def scan() -> str:
            while True:
                line = await self.lines.get()
                if re.search(pattern, line):
                    return line
        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise RuntimeError(f"{self.name}: no log line like {pattern!r}; it said:\n"
                               + "\n".join(self.log)) from None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)


class KioskdProcess(AnswererProcess):
    """`python -m kioskd` with the shipped config file and --set overrides, in a temp dir."""

    name = "kioskd"
    peer = "kiosk"

    def __init__(self, relay_url: str, *overrides: str) -> None:
        super().__init__()
        self.relay_url = relay_url
        self.overrides = overrides
        self.state = Path(tempfile.mkdtemp(prefix="kioskd-bench-"))
        self.socket = self.state / "control.sock"

    async def start(self) -> None:
        token = self.state / "token"
        token.write_text("kiosk-secret\n")
        sets = [f"signaling.url={self.relay_url}", f"signaling.token_file={token}",
                f"control.socket={self.socket}", f"calllog.path={self.state}/calls.sqlite3",
                "log.level=info", *self.overrides]
        argv = [sys.executable, "-m", "kioskd", "--config", str(SHIPPED_CONFIG)]
        for item in sets:
            argv += ["--set", item]
        await self._spawn(argv, dict(os.environ))
        await self.wait_for_log("connected to signaling server")

    async def status(self) -> dict[str, Any]:
        """What `kioskctl --json status` prints, through the same control socket."""
        from kioskd.control import request

        reply = await request(self.socket, "status")
        return reply["status"]

    async def stop(self) -> None:
        await super().stop()
        shutil.rmtree(self.state, ignore_errors=True)


class PlainProcess(AnswererProcess):
    name = "plain_aiortc"
    peer = "plain"

    def __init__(self, relay_url: str, send: str = "pattern", events: bool = False) -> None:
        super().__init__()
        self.relay_url = relay_url
        self.send = send
        self.events = events  # --events: call milestones on stdout (bench.setup_compare)
        if send == "green":
            self.name = "plain_aiortc_green"

    async def start(self) -> None:
        width, height, fps = VIDEO
        await self._spawn([sys.executable, "-m", "bench.plain_answerer", "--url", self.relay_url,
                           "--token", PLAIN_TOKEN, "--send", self.send, "--width", str(width),
                           "--height", str(height), "--fps", str(fps),
                           *(["--events"] if self.events else [])], dict(os.environ))
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        if json.loads(line or b"{}").get("event") != "ready":
            raise RuntimeError("plain answerer did not start:\n" + "\n".join(self.log))

    async def stats(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGUSR1)
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 5))


def negotiated_video_codec(answer_sdp: str) -> str | None:
    """The first video codec of an answer: the one both sides send."""
    media = answer_sdp.split("m=video", 1)
    if len(media) < 2:
        return None
    first_pt = media[1].split("\r\n", 1)[0].split()[2]
    found = re.search(rf"a=rtpmap:{first_pt} ([^/\r\n]+)", media[1])
    return found.group(1) if found else None


@contextlib.asynccontextmanager
async def started(process: AnswererProcess) -> AsyncIterator[AnswererProcess]:
    try:
        await process.start()
        yield process
    finally:
        await process.stop()


async def start_profiler(process: AnswererProcess, profile: Path | None,
                         seconds: float) -> asyncio.subprocess.Process | None:
    """py-spy on the answerer for the window (--profile): a raw (collapsed) stack file."""
    if profile is None:
        return None
    profile.mkdir(parents=True, exist_ok=True)
    out = profile / f"{process.name}-{process.pid}.txt"
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(process.pid), "--duration", str(int(seconds)),
        "--rate", "200", "--threads", "--nonblocking", "--format", "raw",
        "-o", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def answerer_counts(answerer: AnswererProcess | None,
                          callee_page: Any = None) -> dict[str, int]:
    """Caller frames the answerer has received (and, the kiosk, drawn) so far: the kiosk's
    control socket, the plain answerer's stats line, or the Chromium callee's getStats."""
    if isinstance(answerer, KioskdProcess):
        media = (await answerer.status())["call"]["media"]
        return {"received": media["video_frames"], "rendered": media.get("rendered_frames", 0)}
    if isinstance(answerer, PlainProcess):
        return {"received": (await answerer.stats())["video_frames_received"]}
    from bench import chromium_call as cc  # Playwright only for the Chromium callee

    stats = await cc.inbound(callee_page)
    return {"received": stats["video"].get("framesDecoded", 0) if stats else 0}


async def measure(process: AnswererProcess, relay_url: str, seconds: float,
                  settle: float, profile: Path | None = None) -> dict[str, Any]:
    from tests.support.caller import ScriptedCaller

    idle_cpu, idle_wall = cpu_seconds(process.pid), time.monotonic()
    await asyncio.sleep(5)  # the idle window itself
    idle = (cpu_seconds(process.pid) - idle_cpu) / (time.monotonic() - idle_wall)

    caller = ScriptedCaller(relay_url, "alice-secret", video=VIDEO)
    await caller.connect()
    try:
        await caller.call(process.peer, "video")
        answer = await caller.receive_answer()
        await asyncio.wait_for(caller.connected.wait(), 15)
        await caller.sink.wait_for_frames(video=VIDEO[2], timeout=15)
        await asyncio.sleep(settle)  # encoders ramp up their bitrate: not measured

        before = await answerer_counts(process)
        sent_to_caller = caller.sink.video_frames
        profiler = await start_profiler(process, profile, seconds)
        threads = thread_ticks(process.pid)
        cpu, wall = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(seconds)  # the measuring window itself
        cpu, wall = cpu_seconds(process.pid) - cpu, time.monotonic() - wall
        split = thread_split(threads, thread_ticks(process.pid),
                             await python_thread_names(process.pid), wall, cpu)
        sent_to_caller = caller.sink.video_frames - sent_to_caller
        after = await answerer_counts(process)
        rss = rss_mb(process.pid)
        if profiler is not None:
            await profiler.wait()
        await caller.hangup()
    finally:
        await caller.close()
    fps = {f"{key}_fps": round((after[key] - before[key]) / wall, 1) for key in after}
    return {
        "cpu_s_per_call_s": round(cpu / wall, 3),
        "cpu_s": round(cpu, 2),
        "call_s": round(wall, 2),
        "idle_cpu_s_per_s": round(idle, 4),
        **fps,
        "sent_fps_at_caller": round(sent_to_caller / wall, 1),
        "video_codec": negotiated_video_codec(answer["answer"]["sdp"]),
        "rss_mb_in_call": round(rss, 1),
        "per_thread": split,
    }


def process_tree_cpu(kinds: dict[int, str]) -> dict[int, tuple[str, float]]:
    """{pid: (kind, CPU seconds)} of processes that still exist."""
    out: dict[int, tuple[str, float]] = {}
    for pid, kind in kinds.items():
        with contextlib.suppress(OSError):
            out[pid] = (kind, cpu_seconds(pid))
    return out


def browser_split(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                  wall: float) -> dict[str, Any]:
    """A Chromium's CPU per wall second over a window: its renderer (the busiest, the one with
    the page), each kind of process, and all of them."""
    used = {pid: (kind, cpu - before.get(pid, (kind, 0.0))[1])
            for pid, (kind, cpu) in after.items()}
    kinds: dict[str, float] = {}
    for kind, cpu in used.values():
        kinds[kind] = kinds.get(kind, 0.0) + cpu
    renderers = [cpu for kind, cpu in used.values() if kind == "renderer"]
    return {
        "renderer_cpu_s_per_call_s": round(max(renderers) / wall, 3) if renderers else None,
        "all_processes_cpu_s_per_call_s": round(sum(kinds.values()) / wall, 3),
        "by_process_kind": {k: round(v / wall, 3) for k, v in
                            sorted(kinds.items(), key=lambda item: -item[1])},
        "processes": len(used),
    }


CODEC_OF_PAGE = "() => call && call.pc && call.pc.remoteDescription ? " \
                "call.pc.remoteDescription.sdp : null"


async def measure_from_chromium(answerer: AnswererProcess | None, caller_page: Any, target: str,
                                seconds: float, settle: float, profile: Path | None = None,
                                callee_page: Any = None,
                                callee_profile: Path | None = None) -> dict[str, Any]:
    """One call from the Chromium caller page to `target`: the answerer's CPU over the window
    (a process, or with `callee_page` a Chromium's processes), what each end received."""
    from bench import chromium_call as cc

    def answerer_cpu() -> dict[int, tuple[str, float]]:
        if answerer is not None:
            return {answerer.pid: ("process", cpu_seconds(answerer.pid))}
        assert callee_profile is not None
        return process_tree_cpu(cc.browser_processes(callee_profile))

    idle_cpu, idle_wall = answerer_cpu(), time.monotonic()
    await asyncio.sleep(5)  # the idle window itself
    idle_after = answerer_cpu()
    idle = sum(cpu - idle_cpu.get(pid, ("", cpu))[1] for pid, (_, cpu) in idle_after.items()) \
        / (time.monotonic() - idle_wall)

    await cc.place_call(caller_page, target)
    audio = cc.AudioGapPoller(caller_page)
    try:
        await cc.wait_for_video(caller_page, frames=VIDEO[2])
        await asyncio.sleep(settle)  # encoders ramp up their bitrate: not measured

        before = await answerer_counts(answerer, callee_page)
        caller_in, caller_out = await cc.inbound(caller_page), await cc.outbound(caller_page)
        audio.start()
        profiler = None if answerer is None else await start_profiler(answerer, profile, seconds)
        threads = thread_ticks(answerer.pid) if answerer is not None else {}
        cpu, wall = answerer_cpu(), time.monotonic()
        await asyncio.sleep(seconds)  # the measuring window itself
        cpu_after, wall = answerer_cpu(), time.monotonic() - wall
        threads_after = thread_ticks(answerer.pid) if answerer is not None else {}
        used = sum(c - cpu.get(pid, ("", 0.0))[1] for pid, (_, c) in cpu_after.items())
        gaps = await audio.stop()
        after = await answerer_counts(answerer, callee_page)
        caller_in2, caller_out2 = await cc.inbound(caller_page), await cc.outbound(caller_page)
        sdp = await caller_page.evaluate(CODEC_OF_PAGE)
        result: dict[str, Any] = {
            "cpu_s_per_call_s": round(used / wall, 3),
            "cpu_s": round(used, 2),
            "call_s": round(wall, 2),
            "idle_cpu_s_per_s": round(idle, 4),
            **{f"{key}_fps": round((after[key] - before[key]) / wall, 1) for key in after},
            "video_codec": negotiated_video_codec(sdp) if sdp else None,
        }
        if answerer is not None:
            result["rss_mb_in_call"] = round(rss_mb(answerer.pid), 1)
            result["per_thread"] = thread_split(
                threads, threads_after, await python_thread_names(answerer.pid), wall, used)
        else:
            result.update(browser_split(cpu, cpu_after, wall))
        page = cc.page_window(caller_in, caller_in2, caller_out, caller_out2)
        result["at_caller"] = {
            "from_answerer_fps": page["received_fps"],
            "from_answerer_size": page["received_size"],
            "audio": gaps,
            "sent_fps": page.get("sent_fps"),
            "sent_size": page.get("sent_size"),
            "sent_quality_limitation": page.get("sent_quality_limitation"),
            "sent_kbps": page.get("sent_kbps"),
            "sent_target_kbps": page.get("sent_target_kbps"),
            "available_outgoing_kbps": page.get("available_outgoing_kbps"),
            "connection": page["connection"],
        }
        if profiler is not None:
            await profiler.wait()
    finally:
        audio.cancel()
        await cc.hang_up(caller_page)
    # The answerer is idle again before the next call.
    if isinstance(answerer, KioskdProcess):
        deadline = time.monotonic() + 15
        while (await answerer.status())["state"] != "idle" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    elif callee_page is not None:
        await callee_page.wait_for_function("window.caller.state !== 'connected'",
                                            timeout=15_000)
    await asyncio.sleep(1)
    return result


async def run(seconds: float, settle: float, rounds: int, profile: Path | None = None,
              kiosk_sets: tuple[str, ...] = (), answerers: tuple[str, ...] = ANSWERERS,
              caller: str = "chromium") -> dict[str, Any]:
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS

    tokens = {**TOKENS, PLAIN_TOKEN: {"userId": "plain", "username": "Plain aiortc"}}
    width, height, fps = VIDEO
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in answerers}
    async with contextlib.AsyncExitStack() as stack:
        relay = await stack.enter_async_context(running_relay(tokens))
        caller_page = None
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cpu-bench-")))
        if caller == "chromium":
            from playwright.async_api import async_playwright

            from bench import chromium_call as cc

            playwright = await stack.enter_async_context(async_playwright())
            browser = await stack.enter_async_context(
                cc.chromium(playwright, folder / "caller", VIDEO))
            caller_page = await cc.open_page(browser, f"{relay.url}/?token=alice-secret")
        for n in range(rounds):
            order = answerers if n % 2 == 0 else answerers[::-1]
            for name in order:
                if name == "chromium":
                    callee_profile = folder / f"callee-{n}"
                    async with cc.chromium(playwright, callee_profile, VIDEO) as other:
                        callee = await cc.open_page(
                            other, f"{relay.url}/?token=bob-secret&autoanswer=1")
                        samples[name].append(await measure_from_chromium(
                            None, caller_page, "42", seconds, settle,
                            callee_page=callee, callee_profile=callee_profile))
                    continue
                if name == "kioskd":
                    process: AnswererProcess = KioskdProcess(
                        relay.url, "display.mode=window", f"video.width={width}",
                        f"video.height={height}", f"video.fps={fps}", *kiosk_sets)
                else:
                    process = PlainProcess(relay.url, "green" if name.endswith("green")
                                           else "pattern")
                async with started(process):
                    if caller_page is not None:
                        samples[name].append(await measure_from_chromium(
                            process, caller_page, process.peer, seconds, settle, profile))
                    else:
                        samples[name].append(
                            await measure(process, relay.url, seconds, settle, profile))

    def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
        values = [r["cpu_s_per_call_s"] for r in runs]
        return {"cpu_s_per_call_s": round(statistics.fmean(values), 3),
                "cpu_s_per_call_s_each_round": values, "rounds": runs}

    results = {name: combined(samples[name]) for name in answerers}
    if "chromium" in results:
        for key in ("renderer_cpu_s_per_call_s", "all_processes_cpu_s_per_call_s"):
            values = [r[key] for r in samples["chromium"] if r.get(key) is not None]
            results["chromium"][key] = round(statistics.fmean(values), 3) if values else None
    ratio = None
    if "kioskd" in results and "plain_aiortc" in results:
        ratio = round(results["kioskd"]["cpu_s_per_call_s"]
                      / results["plain_aiortc"]["cpu_s_per_call_s"], 3)
    caller_text = (f"headless Chromium {chromium_version()} on the relay's caller page, fake "
                   f"camera at {fps} fps, getUserMedia {width}x{height}@{fps}"
                   if caller == "chromium" else "ScriptedCaller (aiortc) in the bench process")
    return {
        "bench": "cpu_per_call_second",
        "call": f"two-way {width}x{height}@{fps} video + audio",
        "caller": caller_text,
        "window_s": seconds,
        **({"profiled": "py-spy was sampling: these numbers are not for comparison"}
           if profile else {}),
        "results": results,
        "kioskd_over_plain": ratio,
        "kioskd": "python -m kioskd, display.mode=window 1280x720 on Xvfb (renders the caller)"
                  + (f", with --set {' --set '.join(kiosk_sets)}" if kiosk_sets else ""),
        "plain_aiortc": "python -m bench.plain_answerer (renders nothing)",
        **({"chromium": "a second headless Chromium on the caller page, ?autoanswer=1: "
                        "cpu_s_per_call_s is all its processes; renderer_cpu_s_per_call_s "
                        "its busiest renderer (the page's)"} if "chromium" in answerers else {}),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }


def chromium_version() -> str:
    import subprocess

    from tests.e2e.conftest import CHROMIUM

    try:
        out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    found = re.search(r"(\d+\.[\d.]+)", out)
    return found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20, help="measured call seconds")
    parser.add_argument("--settle", type=float, default=3, help="unmeasured seconds first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="also record py-spy profiles (raw stacks) of each answerer there")
    parser.add_argument("--caller", choices=("chromium", "scripted"), default="chromium",
                        help="who calls: headless Chromium on the caller page (default) or "
                             "the ScriptedCaller (aiortc) in this process")
    parser.add_argument("--only", action="append", choices=ANSWERERS, metavar="ANSWERER",
                        help=f"measure only these, of {', '.join(ANSWERERS)} (default: "
                             "kioskd, plain_aiortc, chromium; with --caller scripted kioskd, "
                             "plain_aiortc, plain_aiortc_green)")
    parser.add_argument("--kiosk-set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more --set for kioskd (to see what a setting costs), e.g. "
                             "display.preview=false or display.mode=none")
    args = parser.parse_args()
    answerers = tuple(args.only or DEFAULT_ANSWERERS[args.caller])
    if args.caller == "scripted" and "chromium" in answerers:
        parser.error("the Chromium callee is called by the Chromium caller only")
    netns.run_module_inside("bench.cpu_per_call_second")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        print(json.dumps(asyncio.run(run(args.seconds, args.settle, args.rounds,
                                          args.profile, tuple(args.kiosk_set), answerers,
                                          args.caller))))


if __name__ == "__main__":
    main()
