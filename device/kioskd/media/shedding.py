"""On a CPU that cannot keep up, the kiosk gives up video, never sound.

A person at a kiosk can talk over a jerky or small picture, not over sound with holes in it.
The sound costs little (Opus, 50 packets a second); the video costs most of the CPU (encoding
the camera, decoding and drawing the caller). So when the CPU is pressed (media/cpu_load.py:
the cgroup's quota throttles the kiosk, the process uses nearly all of its quota, or the event
loop that sends the sound runs late), the kiosk steps down one level at a time:

    level 0   the configured frame rate and size
    level 1   half the frame rate sent; the caller drawn at most 15 times a second
    level 2   and half the width and height sent; the caller drawn at most 12 times a second,
              and asked (REMB, rtc/remb.py) for at most 400 kbit/s of video
    level 3   a quarter of the frame rate sent; the caller drawn at most 8 times a second and
              asked for at most 200 kbit/s

Frames are left out before they are encoded (the encoder is the dearest part) and before they
are converted for the screen; the caller, asked for less, sends a smaller picture, which is
cheaper to receive and decode. It steps back up, one level at a time, after the CPU has been
calm for a while; a step up that brings the pressure back makes the next wait twice as long,
so a kiosk that just fits does not go up and down all call long. Every change is logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

import av

from .cpu_load import CgroupQuota, LoadSample, LoadSampler

log = logging.getLogger(__name__)

SAMPLE_S = 0.5  # how often the signals are read
SETTLE_S = 1.0  # after a change, how long its effect is awaited before stepping down again
# Throttled in this share of the quota's periods, twice in a row, counts as pressed (once can
# be a burst the sound rides out: a keyframe); in SEVERELY_THROTTLED of them, at once.
THROTTLED = 0.1
SEVERELY_THROTTLED = 0.5
NEAR_BUDGET = 0.9  # CPU above this share of the quota counts as pressed
# Calm enough to try a step up: under this share of the quota (a step up that does not fit
# shows as pressure soon, and makes the next try wait twice as long).
CALM_BUDGET = 0.75
LATE_LOOP_S = 0.1  # the loop this late, twice in a row, counts as pressed
CALM_LOOP_S = 0.05
HOLD_S = 10.0  # calm this long before a step up; doubled after a step up that failed
MAX_HOLD_S = 120.0


@dataclass(frozen=True)
class Level:
    send_fps_share: float  # of the configured frame rate
    send_scale: int  # width and height divided by this
    screen_fps: float | None  # the most the caller is drawn per second; None: every frame
    receive_bps: int | None  # the most video bitrate the caller is asked for; None: any


LEVELS = (
    Level(1.0, 1, None, None),
    Level(0.5, 1, 15, None),
    Level(0.5, 2, 12, 400_000),
    Level(0.25, 2, 8, 200_000),
)


class SheddingPolicy:
    """Pure: given a LoadSample at time `now`, the level to be at."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Full video: a new call starts there (the pressure may have been the last call's)."""
        self.level = 0
        self.why = ""  # what pressed it, for the log and the status
        self._changed_at = -math.inf
        self._calm_since: float | None = None
        self._hold_s = HOLD_S
        self._stepped_up_at = -math.inf
        self._late_before = self._throttled_before = False

    def update(self, sample: LoadSample, now: float) -> int:
        pressed = self._pressed(sample)
        if pressed:
            self._calm_since = None
            if self.level < len(LEVELS) - 1 and now - self._changed_at >= SETTLE_S:
                if now - self._stepped_up_at < HOLD_S:  # the last step up did not hold
                    self._hold_s = min(MAX_HOLD_S, self._hold_s * 2)
                self.level += 1
                self.why = pressed
                self._changed_at = now
        elif self._calm(sample):
            if self._calm_since is None:
                self._calm_since = now
            if self.level > 0 and now - max(self._calm_since, self._changed_at) >= self._hold_s:
                self.level -= 1
                self.why = "the CPU has room again"
                self._changed_at = self._stepped_up_at = now
                self._calm_since = now
        else:
            self._calm_since = None
        return self.level

    def _pressed(self, sample: LoadSample) -> str:
        late = sample.loop_lag_s >= LATE_LOOP_S
        late_twice, self._late_before = late and self._late_before, late
        throttled = sample.budget is not None and sample.throttled >= THROTTLED
        throttled_twice, self._throttled_before = throttled and self._throttled_before, throttled
        if throttled_twice or (throttled and sample.throttled >= SEVERELY_THROTTLED):
            return (f"the CPU quota ({sample.budget:.0%} of a core) throttled the kiosk in "
                    f"{sample.throttled:.0%} of its periods")
        if sample.budget is not None and sample.cpu >= NEAR_BUDGET * sample.budget:
            return (f"the kiosk uses {sample.cpu:.0%} of a core, nearly all of its quota "
                    f"({sample.budget:.0%})")
        if late_twice:
            return f"the event loop ran {sample.loop_lag_s * 1000:.0f} ms late"
        return ""

    @staticmethod
    def _calm(sample: LoadSample) -> bool:
        if sample.loop_lag_s >= CALM_LOOP_S or sample.throttled > 0:
            return False
        return sample.budget is None or sample.cpu < CALM_BUDGET * sample.budget


class VideoShedding:
    """The kiosk's load watch (a lifecycle component): samples the CPU while a call runs and
    tells the camera's track (through its FrameThinner) and the screen (`screen_fps`) what to
    leave out."""

    name = "video shedding"

    def __init__(self, enabled: bool = True, sampler: LoadSampler | None = None) -> None:
        self.enabled = enabled
        self.policy = SheddingPolicy()
        self._sampler = sampler
        self._in_call = False
        self._tasks: list[asyncio.Task[None]] = []
        self.last_sample: LoadSample | None = None

    @property
    def level(self) -> Level:
        return LEVELS[self.policy.level if self.enabled else 0]

    async def start(self) -> None:
        if self._sampler is None:
            quota = CgroupQuota.find()
            if quota is not None:
                log.info("CPU quota: %.0f%% of a core (%s); video is shed when it presses",
                         100 * (quota.budget() or 0), quota.folder)
            self._sampler = LoadSampler(quota, find_quota=CgroupQuota.find)
        self._tasks = [asyncio.create_task(self._sampler.run(), name="loop lag"),
                       asyncio.create_task(self._watch(), name="video shedding")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def call_started(self) -> None:
        self.policy.reset()
        self._in_call = True

    def call_ended(self) -> None:
        self._in_call = False
        self.policy.reset()

    async def _watch(self) -> None:
        assert self._sampler is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.last_sample = sample = self._sampler.sample()
            if not (self.enabled and self._in_call):
                continue
            before = self.policy.level
            after = self.policy.update(sample, loop.time())
            if after != before:
                level = LEVELS[after]
                log.warning("%s: video level %d: sending %.0f%% of the frame rate at 1/%d size, "
                            "drawing the caller at %s fps, asking it for %s (CPU %.0f%% of a "
                            "core)", self.policy.why, after, 100 * level.send_fps_share,
                            level.send_scale, level.screen_fps or "full",
                            f"{level.receive_bps // 1000} kbit/s" if level.receive_bps
                            else "any bitrate", 100 * sample.cpu)

    def _budget(self) -> float | None:
        quota = self._sampler.quota if self._sampler is not None else None
        return quota.budget() if quota is not None else None

    def screen_fps(self) -> float | None:
        return self.level.screen_fps

    def stats(self) -> dict[str, Any]:
        sample = self.last_sample
        return {
            "level": self.policy.level if self.enabled else 0,
            "enabled": self.enabled,
            "why": self.policy.why if self.policy.level else "",
            "cpu": None if sample is None else round(sample.cpu, 3),
            "cpu_budget": self._budget() if sample is None else sample.budget,
            "throttled": None if sample is None else round(sample.throttled, 3),
            "loop_lag_ms": None if sample is None else round(sample.loop_lag_s * 1000),
        }


class FrameThinner:
    """For one video track: which camera frames to send at the current level, and at what size.
    Frames are kept by their media time, so the rate is right whatever the camera delivers."""

    def __init__(self, shedding: VideoShedding, fps: float) -> None:
        self.shedding = shedding
        self.fps = fps
        self._next_media = -math.inf  # media time the next frame sent is due at
        self._last_media = -math.inf

    def thin(self, frame: av.VideoFrame) -> av.VideoFrame | None:
        """The frame to send (maybe scaled down), or None to leave it out."""
        level = self.shedding.level
        if level.send_fps_share < 1.0 and frame.pts is not None and frame.time_base is not None:
            media = float(frame.pts * frame.time_base)
            new_stream = media < self._last_media  # a reopened camera starts over
            self._last_media = media
            if media < self._next_media and not new_stream:
                return None
            # Half a camera interval of slack, so a frame that comes a little early is kept.
            self._next_media = media + 1 / (self.fps * level.send_fps_share) - 0.5 / self.fps
        if level.send_scale > 1:
            scale = level.send_scale
            # Even sizes: the encoders' 4:2:0 chroma needs them.
            frame = frame.reformat(width=frame.width // scale // 2 * 2,
                                   height=frame.height // scale // 2 * 2, format="yuv420p")
        return frame
