"""CPU per call second of the answering process, the kiosk beside a plain aiortc answerer.

Each answerer runs as its own process, signed in to a relay in this process:

- `kioskd`: `python -m kioskd --config config/kioskd.toml --set ...` with display.mode=window
  (1280x720) on a private Xvfb, sending 640x480@24 (its synthetic camera and tone), rendering
  the caller's video;
- `plain_aiortc`: `python -m bench.plain_answerer` (aiortc's example way of answering; renders
  nothing), sending the same synthetic 640x480@24 pattern and tone;
- `plain_aiortc_green`: the same with `--send green`: aiortc's own dummy tracks (640x480 green at
  30 fps, silence), as in aiortc's examples. Cheaper to encode than a moving picture: shown for
  reference, not the comparison.

A ScriptedCaller (aiortc, browser-like) in this process calls each answerer with synthetic
640x480@24 video and a tone, so every answerer decodes the same stream and encodes one of its
own. After the call connects and settles (`--settle`, 3 s), the answerer's CPU is read from
/proc/<pid>/stat (utime + stime: all its threads) at the start and end of `--seconds` of
connected call (20 s): cpu_s_per_call_s = CPU seconds / wall seconds. Also measured: the
same over 5 s idle before the call, the frame rates each way over the window (the kiosk's
received and rendered frames from its control socket, as `kioskctl --json status` reads them;
the plain answerer's from its SIGUSR1 stats line), and the video codec negotiated.

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
from pathlib import Path
from typing import Any, AsyncIterator

from tests.support import netns
from tests.support.xvfb import running_xvfb

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = ROOT / "config" / "kioskd.toml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PLAIN_TOKEN = "plain-secret"
VIDEO = (640, 480, 24)
ANSWERERS = ("kioskd", "plain_aiortc", "plain_aiortc_green")


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
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.name}: no log line like {pattern!r}; it said:\n"
                               + "\n".join(self.log)) from None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
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

        async def answerer_counts() -> dict[str, int]:
            if isinstance(process, KioskdProcess):
                media = (await process.status())["call"]["media"]
                return {"received": media["video_frames"],
                        "rendered": media.get("rendered_frames", 0)}
            return {"received": (await process.stats())["video_frames_received"]}

        before = await answerer_counts()
        sent_to_caller = caller.sink.video_frames
        profiler = await start_profiler(process, profile, seconds)
        cpu, wall = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(seconds)  # the measuring window itself
        cpu, wall = cpu_seconds(process.pid) - cpu, time.monotonic() - wall
        sent_to_caller = caller.sink.video_frames - sent_to_caller
        after = await answerer_counts()
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
    }


async def run(seconds: float, settle: float, rounds: int, profile: Path | None = None,
              kiosk_sets: tuple[str, ...] = (),
              answerers: tuple[str, ...] = ANSWERERS) -> dict[str, Any]:
    from kioskd.relay.server import running_relay
    from tests.integration.conftest import TOKENS

    tokens = {**TOKENS, PLAIN_TOKEN: {"userId": "plain", "username": "Plain aiortc"}}
    width, height, fps = VIDEO
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in answerers}
    async with running_relay(tokens) as relay:
        for n in range(rounds):
            order = answerers if n % 2 == 0 else answerers[::-1]
            for name in order:
                if name == "kioskd":
                    process: AnswererProcess = KioskdProcess(
                        relay.url, "display.mode=window", f"video.width={width}",
                        f"video.height={height}", f"video.fps={fps}", *kiosk_sets)
                else:
                    process = PlainProcess(relay.url, "green" if name.endswith("green")
                                           else "pattern")
                async with started(process):
                    samples[name].append(
                        await measure(process, relay.url, seconds, settle, profile))

    def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
        values = [r["cpu_s_per_call_s"] for r in runs]
        return {"cpu_s_per_call_s": round(statistics.fmean(values), 3),
                "cpu_s_per_call_s_each_round": values, "rounds": runs}

    results = {name: combined(samples[name]) for name in answerers}
    ratio = None
    if "kioskd" in results and "plain_aiortc" in results:
        ratio = round(results["kioskd"]["cpu_s_per_call_s"]
                      / results["plain_aiortc"]["cpu_s_per_call_s"], 3)
    return {
        "bench": "cpu_per_call_second",
        "call": f"two-way {width}x{height}@{fps} video + audio, ScriptedCaller in the bench "
                f"process",
        "window_s": seconds,
        **({"profiled": "py-spy was sampling: these numbers are not for comparison"}
           if profile else {}),
        "results": results,
        "kioskd_over_plain": ratio,
        "kioskd": "python -m kioskd, display.mode=window 1280x720 on Xvfb (renders the caller)"
                  + (f", with --set {' --set '.join(kiosk_sets)}" if kiosk_sets else ""),
        "plain_aiortc": "python -m bench.plain_answerer (renders nothing)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20, help="measured call seconds")
    parser.add_argument("--settle", type=float, default=3, help="unmeasured seconds first")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="also record py-spy profiles (raw stacks) of each answerer there")
    parser.add_argument("--only", action="append", choices=ANSWERERS, metavar="ANSWERER",
                        help=f"measure only these (default all: {', '.join(ANSWERERS)})")
    parser.add_argument("--kiosk-set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more --set for kioskd (to see what a setting costs), e.g. "
                             "display.preview=false or display.mode=none")
    args = parser.parse_args()
    netns.run_module_inside("bench.cpu_per_call_second")
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        print(json.dumps(asyncio.run(run(args.seconds, args.settle, args.rounds,
                                          args.profile, tuple(args.kiosk_set),
                                          tuple(args.only or ANSWERERS)))))


if __name__ == "__main__":
    main()
