"""Video shed under CPU pressure, never sound: the signals, the policy, the thinned frames."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from aiortc.mediastreams import MediaStreamTrack

from kioskd.media import shedding as sh
from kioskd.media.cpu_load import CgroupQuota, LoadSample, LoadSampler
from kioskd.media.shedding import LEVELS, FrameThinner, SheddingPolicy, VideoShedding
from kioskd.media.switch import SwitchableTrack

CALM = LoadSample(cpu=0.10, budget=0.35, throttled=0.0, loop_lag_s=0.002)
THROTTLED = LoadSample(cpu=0.34, budget=0.35, throttled=0.6, loop_lag_s=0.03)


# -- the cgroup quota ---------------------------------------------------------------------


def cgroup_v1(root: Path, path: str, quota: int, period: int = 100_000) -> Path:
    folder = root / "cpu" / path.lstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    (folder / "cpu.stat").write_text("nr_periods 10\nnr_throttled 4\nthrottled_time 9\n")
    return folder


def test_v1_quota_found_where_proc_cgroup_says(tmp_path):
    cgroup_v1(tmp_path, "/", -1)
    group = cgroup_v1(tmp_path, "/kiosk", 35_000)
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/x\n1:cpu:/kiosk\n0::/\n")
    quota = CgroupQuota.find(str(proc), tmp_path)
    assert quota is not None and quota.folder == group
    assert quota.budget() == pytest.approx(0.35)
    assert quota.periods() == (10, 4)


def test_a_parents_tighter_quota_wins(tmp_path):
    cgroup_v1(tmp_path, "/slice", 50_000)
    cgroup_v1(tmp_path, "/slice/kiosk", 80_000)
    proc = tmp_path / "cgroup"
    proc.write_text("1:cpu:/slice/kiosk\n")
    quota = CgroupQuota.find(str(proc), tmp_path)
    assert quota is not None and quota.budget() == pytest.approx(0.5)


def test_v2_quota_and_no_quota(tmp_path):
    folder = tmp_path / "system.slice" / "kioskd.service"
    folder.mkdir(parents=True)
    (folder / "cpu.max").write_text("60000 100000\n")
    (folder / "cpu.stat").write_text("usage_usec 5\nnr_periods 7\nnr_throttled 2\n"
                                     "throttled_usec 3\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/kioskd.service\n")
    quota = CgroupQuota.find(str(proc), tmp_path)
    assert quota is not None and quota.budget() == pytest.approx(0.6)
    assert quota.periods() == (7, 2)
    (folder / "cpu.max").write_text("max 100000\n")
    assert CgroupQuota.find(str(proc), tmp_path) is None
    assert CgroupQuota.find(str(tmp_path / "missing"), tmp_path) is None


def test_sampler_reports_the_throttled_share_since_the_last_sample(tmp_path):
    group = cgroup_v1(tmp_path, "/kiosk", 35_000)
    sampler = LoadSampler(CgroupQuota(group, 1))
    (group / "cpu.stat").write_text("nr_periods 20\nnr_throttled 9\n")
    sample = sampler.sample()
    assert sample.budget == pytest.approx(0.35)
    assert sample.throttled == pytest.approx(0.5)  # 5 of the 10 new periods
    assert sampler.sample().throttled == 0.0  # nothing new


async def test_sampler_sees_a_blocked_loop():
    sampler = LoadSampler()
    task = asyncio.create_task(sampler.run())
    try:
        await asyncio.sleep(0)  # the timer is armed
        time.sleep(0.25)  # the loop blocked on purpose: what is measured
        ticked = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.15, ticked.set_result, None)
        await asyncio.wait_for(ticked, 2)
        assert sampler.sample().loop_lag_s >= 0.1
    finally:
        task.cancel()


# -- the policy ---------------------------------------------------------------------------


def test_throttling_steps_down_one_level_per_settle_time():
    policy = SheddingPolicy()
    assert policy.update(THROTTLED, 0.0) == 1
    assert "throttled" in policy.why
    assert policy.update(THROTTLED, 0.5) == 1  # its effect is awaited first
    assert policy.update(THROTTLED, 1.0) == 2
    assert policy.update(THROTTLED, 2.0) == 3
    assert policy.update(THROTTLED, 3.0) == 3  # the last level


def test_a_throttled_burst_is_ridden_out_but_not_twice_in_a_row():
    policy = SheddingPolicy()
    burst = LoadSample(cpu=0.25, budget=0.35, throttled=0.2, loop_lag_s=0.01)
    quiet = LoadSample(cpu=0.20, budget=0.35, throttled=0.0, loop_lag_s=0.01)
    assert policy.update(burst, 0.0) == 0  # a keyframe: one period in five
    assert policy.update(quiet, 0.5) == 0
    assert policy.update(burst, 1.0) == 0
    assert policy.update(burst, 1.5) == 1
    assert "throttled the kiosk in 20% of its periods" in policy.why


def test_near_the_quota_is_pressed_too():
    policy = SheddingPolicy()
    assert policy.update(LoadSample(0.33, 0.35, 0.0, 0.0), 0.0) == 1
    assert "nearly all of its quota" in policy.why


def test_a_late_loop_counts_only_twice_in_a_row():
    policy = SheddingPolicy()
    late = LoadSample(0.3, None, 0.0, 0.2)
    assert policy.update(late, 0.0) == 0  # once: a garbage collection, a slow disk
    assert policy.update(LoadSample(0.3, None, 0.0, 0.01), 0.5) == 0
    assert policy.update(late, 1.0) == 0
    assert policy.update(late, 1.5) == 1
    assert "event loop ran 200 ms late" in policy.why


def test_calm_steps_up_after_the_hold_and_a_failed_step_up_doubles_it():
    policy = SheddingPolicy()
    policy.update(THROTTLED, 0.0)
    policy.update(THROTTLED, 1.0)
    assert policy.level == 2
    for t in (2.0, 5.0, 10.5):
        assert policy.update(CALM, t) == 2  # not yet: calm since 2.0
    assert policy.update(CALM, 12.0) == 1  # 10 s calm
    assert policy.update(THROTTLED, 13.0) == 2  # that step up did not hold
    for t in (14.0, 25.0, 33.5):
        assert policy.update(CALM, t) == 2  # now it waits 20 s
    assert policy.update(CALM, 34.0) == 1


def test_using_most_of_the_quota_is_not_calm():
    policy = SheddingPolicy()
    policy.update(THROTTLED, 0.0)
    busy = LoadSample(cpu=0.28, budget=0.35, throttled=0.0, loop_lag_s=0.0)
    for t in range(1, 60):
        assert policy.update(busy, float(t)) == 1  # a step up would not fit: stays


def test_disabled_or_out_of_a_call_nothing_is_shed():
    shedding = VideoShedding(enabled=False)
    shedding.policy.update(THROTTLED, 0.0)
    assert shedding.level == LEVELS[0]
    assert shedding.stats()["level"] == 0


async def test_the_watch_acts_only_in_a_call(monkeypatch):
    monkeypatch.setattr(sh, "SAMPLE_S", 0.01)
    samples = iter([THROTTLED] * 1000)

    class Fixed(LoadSampler):
        def sample(self) -> LoadSample:
            return next(samples)

    shedding = VideoShedding(sampler=Fixed())
    await shedding.start()
    try:
        await asyncio.sleep(0.05)  # out of a call: samples come, nothing changes
        assert shedding.policy.level == 0
        shedding.call_started()
        await asyncio.wait_for(_until(lambda: shedding.policy.level == 1), 2)
        assert shedding.stats()["why"].startswith("the CPU quota (35% of a core)")
        shedding.call_ended()
        assert shedding.level == LEVELS[0]
    finally:
        await shedding.stop()


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.005)


# -- the frames -------------------------------------------------------------------------


def frame_at(n: int, fps: int = 24, size: tuple[int, int] = (640, 480)) -> av.VideoFrame:
    frame = av.VideoFrame(*size, "yuv420p")
    frame.pts, frame.time_base = n * 90000 // fps, Fraction(1, 90000)
    return frame


class Fixed:
    def __init__(self, level: int) -> None:
        self.level = LEVELS[level]


def test_thinner_sends_half_the_frames_by_media_time():
    thinner = FrameThinner(Fixed(1), fps=24)  # type: ignore[arg-type]
    kept = [n for n in range(48) if thinner.thin(frame_at(n)) is not None]
    assert len(kept) == 24 and kept[:3] == [0, 2, 4]


def test_thinner_keeps_a_late_camera_and_a_new_stream():
    thinner = FrameThinner(Fixed(1), fps=24)  # type: ignore[arg-type]
    assert thinner.thin(frame_at(0)) is not None
    assert thinner.thin(frame_at(3)) is not None  # the camera skipped two: sent at once
    assert thinner.thin(frame_at(0)) is not None  # media time went back: a new stream


def test_thinner_sends_half_size_at_level_two_keeping_timing():
    thinner = FrameThinner(Fixed(2), fps=24)  # type: ignore[arg-type]
    sent = thinner.thin(frame_at(0, size=(642, 482)))
    assert sent is not None
    assert (sent.width, sent.height, sent.format.name) == (320, 240, "yuv420p")
    assert (sent.pts, sent.time_base) == (0, Fraction(1, 90000))
    full = FrameThinner(Fixed(0), fps=24).thin(frame_at(0))  # type: ignore[arg-type]
    assert full is not None and full.width == 640  # level 0: as it came


async def test_a_thinned_track_sends_fewer_frames_and_never_touches_audio():
    class Camera(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def recv(self) -> av.VideoFrame:
            self.n += 1
            return frame_at(self.n - 1)

    camera = Camera()
    track = SwitchableTrack(camera)
    track.thinner = FrameThinner(Fixed(3), fps=24)  # type: ignore[arg-type]
    sent = [await track.recv() for _ in range(6)]
    assert [round(float(f.pts * f.time_base) * 24) for f in sent] == [0, 4, 8, 12, 16, 20]
    assert camera.n == 21 and track.frames_sent == 6
    assert all(f.width == 320 for f in sent)


# -- asking the caller for less ---------------------------------------------------------


async def test_the_reported_bitrate_is_capped_while_the_level_asks_for_less():
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from aiortc.rtp import RtcpPsfbPacket, RtpPacket, unpack_remb_fci

    from kioskd.rtc.remb import limit_remb
    from tests.unit.test_jitter import VP8, FakeTransport

    transport = FakeTransport()
    receiver = RTCRtpReceiver("video", transport)  # type: ignore[arg-type]
    receiver._RTCRtpReceiver__codecs[VP8.payloadType] = VP8
    receiver._set_rtcp_ssrc(1)
    estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
    estimator.add = lambda **packet: (1_500_000, [7])  # the estimate: what a report says
    ceiling: list[int | None] = [None]
    assert limit_remb(receiver, lambda: ceiling[0])

    async def reported() -> int:
        transport.rtcp.clear()
        packet = RtpPacket(payload_type=VP8.payloadType, sequence_number=1, ssrc=7)
        packet.extensions.abs_send_time = 1
        await receiver._handle_rtp_packet(packet, arrival_time_ms=0)
        remb = [p for p in transport.rtcp if isinstance(p, RtcpPsfbPacket) and p.fmt == 15]
        return unpack_remb_fci(remb[-1].fci)[0]

    assert await reported() == 1_500_000
    ceiling[0] = LEVELS[3].receive_bps
    assert await reported() == 200_000
    ceiling[0] = None
    assert await reported() == 1_500_000
    receiver._RTCRtpReceiver__stop_decoder()
