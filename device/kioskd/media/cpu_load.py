"""How hard the kiosk's CPU is pressed: what the video shedding (media/shedding.py) acts on.

Three signals, read every sample interval:

- the CPU the whole process used (all its threads), per wall second;
- the CPU quota of the kiosk's cgroup, if there is one (cgroup v1 `cpu.cfs_quota_us` /
  `cpu.cfs_period_us`, or v2 `cpu.max`, as `systemd-run -p CPUQuota=` and a unit's
  `CPUQuota=` set), and the share of its scheduling periods in which the kernel throttled it.
  A throttled process is frozen for the rest of the period (up to 65 ms of every 100 at 35 %
  of a core): the sound then leaves in bursts and the far end conceals what came too late;
- how late the event loop ran a timer: the loop sends the sound, so a late loop is late sound,
  on a machine that is simply too slow as much as under a quota.

The cgroup files are read where /proc/self/cgroup says the process is; a quota set on a parent
group (a slice) counts too, the tightest one wins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
TICK_S = 0.1  # the loop-lag timer's interval


@dataclass(frozen=True)
class LoadSample:
    cpu: float  # CPU seconds the process used per wall second (1.0 = one core)
    budget: float | None  # cores the cgroup's quota allows; None without a quota
    throttled: float  # share of the quota's periods in which the process was throttled
    loop_lag_s: float  # the event loop's worst lateness over the interval


class CgroupQuota:
    """The tightest CPU quota over the process's cgroup and its parents, and its throttling."""

    def __init__(self, folder: Path, version: int) -> None:
        self.folder = folder
        self.version = version

    @classmethod
    def find(cls, proc_cgroup: str = "/proc/self/cgroup",
             root: Path = CGROUP_ROOT) -> CgroupQuota | None:
        """The cgroup folder holding the quota that limits this process; None without one."""
        try:
            lines = Path(proc_cgroup).read_text().splitlines()
        except OSError:
            return None
        best: tuple[float, CgroupQuota] | None = None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                version, mount = 2, root
            elif "cpu" in controllers.split(","):
                version, mount = 1, root / controllers
                if not mount.exists():  # e.g. "cpu,cpuacct" mounted as "cpu"
                    mount = root / "cpu"
            else:
                continue
            folder = mount / path.lstrip("/")
            while True:
                candidate = cls(folder, version)
                budget = candidate.budget()
                if budget is not None and (best is None or budget < best[0]):
                    best = (budget, candidate)
                if folder == mount or folder.parent == folder:
                    break
                folder = folder.parent
        return None if best is None else best[1]

    def budget(self) -> float | None:
        """Cores the quota allows (0.35 for 35 % of one core); None when unlimited."""
        try:
            if self.version == 1:
                quota = int((self.folder / "cpu.cfs_quota_us").read_text())
                period = int((self.folder / "cpu.cfs_period_us").read_text())
            else:
                quota_text, period_text = (self.folder / "cpu.max").read_text().split()
                if quota_text == "max":
                    return None
                quota, period = int(quota_text), int(period_text)
        except (OSError, ValueError):
            return None
        return quota / period if quota > 0 and period > 0 else None

    def periods(self) -> tuple[int, int]:
        """(periods, throttled periods) so far."""
        try:
            text = (self.folder / "cpu.stat").read_text()
        except OSError:
            return 0, 0
        values = dict(line.split() for line in text.splitlines() if " " in line)
        return int(values.get("nr_periods", 0)), int(values.get("nr_throttled", 0))


class LoadSampler:
    """`sample()` gives the signals since the previous call; `run()` keeps the lag timer.

    With `find_quota`, the quota is looked up again at each sample: an admin may set one on
    the running service (`systemctl set-property kioskd CPUQuota=50%`)."""

    def __init__(self, quota: CgroupQuota | None = None,
                 find_quota: Callable[[], CgroupQuota | None] | None = None) -> None:
        self.quota = quota
        self._find_quota = find_quota
        self._cpu = time.process_time()  # all the process's threads
        self._wall = time.monotonic()
        self._periods = quota.periods() if quota is not None else (0, 0)
        self._worst_lag = 0.0

    async def run(self) -> None:
        """Measure how late the loop runs a timer, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self._worst_lag = max(self._worst_lag, loop.time() - due)

    def sample(self) -> LoadSample:
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-3)
        self._cpu, self._wall = cpu, wall
        throttled, budget = 0.0, None
        if self._find_quota is not None:
            found = self._find_quota()
            if (found and found.folder) != (self.quota and self.quota.folder):
                self.quota = found  # a new group: its counts start here
                self._periods = found.periods() if found is not None else (0, 0)
        if self.quota is not None:
            budget = self.quota.budget()
            periods = self.quota.periods()
            new_periods = periods[0] - self._periods[0]
            if new_periods > 0:
                throttled = (periods[1] - self._periods[1]) / new_periods
            self._periods = periods
        lag, self._worst_lag = self._worst_lag, 0.0
        return LoadSample(cpu=used, budget=budget, throttled=throttled, loop_lag_s=lag)
