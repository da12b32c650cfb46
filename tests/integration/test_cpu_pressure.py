"""A kiosk whose CPU quota cannot carry its video sheds video, keeps its sound, and the call
goes on: the real daemon in a cgroup, sending 1280x720@24 to an aiortc caller that sends
320x240@24, so that most of the kiosk's CPU goes to what it can shed (bench/cpu_cap.py
measures a Chromium call, 640x480@24 both ways, at 100, 60 and 35 % of a core).

The cap is set from what the kiosk uses in the call, uncapped, on the machine at hand (a fast
machine needs a tighter cap than a slow one to be pressed): 70 % of it."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from kioskd.relay.server import running_relay
from tests.integration.conftest import TOKENS
from tests.support import cpu_cap
from tests.support.caller import ScriptedCaller
from tests.support.kioskd_process import KioskDaemon, kioskd_inside

SENT = (1280, 720, 24)
RECEIVED = (320, 240, 24)


async def rates(caller: ScriptedCaller, seconds: float) -> tuple[float, float]:
    """Video and audio frames a second the caller received over `seconds`."""
    video, audio, start = caller.sink.video_frames, caller.sink.audio_frames, time.monotonic()
    await asyncio.sleep(seconds)  # the measuring window itself
    wall = time.monotonic() - start
    return (caller.sink.video_frames - video) / wall, (caller.sink.audio_frames - audio) / wall


async def cpu_in_call(kiosk: KioskDaemon, seconds: float) -> float:
    """The kiosk's own CPU reading (a core = 1.0), averaged over `seconds`."""
    readings = []
    for _ in range(round(seconds / 0.5)):
        await asyncio.sleep(0.5)  # the kiosk samples every 0.5 s
        readings.append((await kiosk.status())["video_shedding"]["cpu"])
    return statistics.fmean(readings)


async def settled(kiosk: KioskDaemon, timeout: float, hold: int = 6) -> dict:
    """The status once the shedding level has stayed the same for `hold` half-seconds."""
    levels: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # the kiosk samples every 0.5 s
        status = await kiosk.status()
        levels.append(status["video_shedding"]["level"])
        if len(levels) >= hold and len(set(levels[-hold:])) == 1:
            return status
    raise AssertionError(f"the video level did not settle in {timeout} s: {levels}")


async def test_a_starved_kiosk_sheds_video_and_keeps_its_sound(tmp_path):
    if reason := cpu_cap.missing():
        pytest.skip(reason)
    async with running_relay(TOKENS) as relay:
        with cpu_cap.cpu_capped(None) as cap:
            async with kioskd_inside(cap.inside, relay.url, tmp_path, "display.mode=none",
                                     f"video.width={SENT[0]}", f"video.height={SENT[1]}",
                                     f"video.fps={SENT[2]}") as kiosk:
                await kiosk.line("connected to signaling server", timeout=30)
                caller = ScriptedCaller(relay.url, "alice-secret", video=RECEIVED)
                await caller.connect()
                try:
                    await caller.call("kiosk", "video")
                    await caller.receive_answer(timeout=20)
                    await asyncio.wait_for(caller.connected.wait(), 20)
                    await caller.sink.wait_for_frames(video=3, timeout=20)
                    uncapped = await cpu_in_call(kiosk, 3.0)
                    video_before, audio_before = await rates(caller, 3.0)
                    assert video_before >= 10, f"hardly any video uncapped: {video_before}"

                    cap.set(0.7 * uncapped)
                    await kiosk.line("video level 1", timeout=30)
                    shed = await settled(kiosk, 30)
                    why = shed["video_shedding"]["why"]
                    assert "throttled the kiosk" in why or "nearly all of its quota" in why, why
                    video_fps, audio_fps = await rates(caller, 6.0)
                    # Half the frame rate or less, and the sound as it came uncapped (50
                    # frames a second, less what this caller, on a busy machine, misses).
                    assert video_fps <= 0.6 * video_before, (video_fps, video_before, shed)
                    assert audio_fps >= min(45, 0.9 * audio_before), (audio_fps, audio_before,
                                                                      shed)
                    assert (await kiosk.status())["state"] == "connected"
                    await caller.hangup()
                    await kiosk.wait_for(lambda s: s["state"] == "idle", 20)
                finally:
                    await caller.close()
