"""A kiosk whose CPU quota cannot carry its video sheds video, keeps its sound, and the call
goes on: the real daemon in a cgroup capped to a small share of one core, called by an aiortc
caller sending 640x480@24 (bench/cpu_cap.py measures the same with Chromium at several caps)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kioskd.relay.server import running_relay
from tests.integration.conftest import TOKENS
from tests.support import cpu_cap
from tests.support.caller import ScriptedCaller
from tests.support.kioskd_process import kioskd_inside

VIDEO = (640, 480, 24)


async def rates(caller: ScriptedCaller, seconds: float) -> tuple[float, float]:
    """Video and audio frames a second the caller received over `seconds`."""
    video, audio, start = caller.sink.video_frames, caller.sink.audio_frames, time.monotonic()
    await asyncio.sleep(seconds)  # the measuring window itself
    wall = time.monotonic() - start
    return (caller.sink.video_frames - video) / wall, (caller.sink.audio_frames - audio) / wall


async def test_a_starved_kiosk_sheds_video_and_keeps_its_sound(tmp_path):
    if reason := cpu_cap.missing():
        pytest.skip(reason)
    async with running_relay(TOKENS) as relay:
        with cpu_cap.cpu_capped(0.12) as cap:
            async with kioskd_inside(cap.inside, relay.url, tmp_path, "display.mode=none",
                                     f"video.width={VIDEO[0]}", f"video.height={VIDEO[1]}",
                                     f"video.fps={VIDEO[2]}") as kiosk:
                await kiosk.line("connected to signaling server", timeout=30)
                assert (await kiosk.status())["video_shedding"]["cpu_budget"] == 0.12
                caller = ScriptedCaller(relay.url, "alice-secret", video=VIDEO)
                await caller.connect()
                try:
                    await caller.call("kiosk", "video")
                    await caller.receive_answer(timeout=20)
                    await asyncio.wait_for(caller.connected.wait(), 20)
                    await caller.sink.wait_for_frames(video=3, timeout=20)
                    await kiosk.line("video level 1", timeout=30)
                    shed = await kiosk.wait_for(
                        lambda s: (s["video_shedding"] or {}).get("level", 0) >= 2, 30)
                    assert "CPU quota (12% of a core)" in shed["video_shedding"]["why"] or \
                        "nearly all of its quota" in shed["video_shedding"]["why"]
                    video_fps, audio_fps = await rates(caller, 4.0)
                    # Level 2 and below send at most half of 24 fps; the sound is all there.
                    assert video_fps <= 13, video_fps
                    assert audio_fps >= 45, audio_fps
                    status = await kiosk.status()
                    assert status["state"] == "connected"
                    await caller.hangup()
                    await kiosk.wait_for(lambda s: s["state"] == "idle", 20)
                finally:
                    await caller.close()
