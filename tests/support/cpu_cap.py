"""A CPU cap for one process tree: a cgroup v1 `cpu` group with a CFS quota (this machine
mounts cgroup v1; on a Pi with systemd, `systemd-run --scope -p CPUQuota=35%` does the same).

The group is made with a unique name and removed when the block ends; the processes put in it
must have exited by then (the tests stop them first). A process enters it through `inside()`,
which writes its own PID into the group before it executes the real program, so nothing runs
uncapped.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

CPU_CONTROLLER = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000  # the kernel's default CFS period, as systemd's CPUQuota= uses
REMOVE_TRIES = 50  # 0.1 s apart


def missing() -> str | None:
    """Why a capped process cannot be had here, or None."""
    if not (CPU_CONTROLLER / "cpu.cfs_quota_us").exists():
        return f"needs the cgroup v1 cpu controller at {CPU_CONTROLLER}"
    if not os.access(CPU_CONTROLLER, os.W_OK):
        return f"needs to make cgroups under {CPU_CONTROLLER} (root)"
    return None


class CpuCap:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def set(self, share: float | None) -> None:
        """Cap the group to `share` of one core (0.35: 35 %); None lifts the cap."""
        (self.folder / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        quota = -1 if share is None else round(share * PERIOD_US)
        (self.folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")

    def add(self, pid: int) -> None:
        """Move a running process (and its threads) into this group."""
        (self.folder / "cgroup.procs").write_text(f"{pid}\n")

    def inside(self, *argv: str) -> list[str]:
        """`argv` run in this group: a shell joins it, then becomes the program."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.folder / "cgroup.procs"),
                *argv]

    def stat(self) -> dict[str, int]:
        """cpu.stat: nr_periods, nr_throttled, throttled_time (ns)."""
        text = (self.folder / "cpu.stat").read_text()
        return {name: int(value) for name, value in
                (line.split() for line in text.splitlines() if line.strip())}


@contextlib.contextmanager
def cpu_capped(share: float | None) -> Iterator[CpuCap]:
    """A group capped to `share` of one core (0.35: 35 %; None: not yet), for the block."""
    folder = CPU_CONTROLLER / f"kioskd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    try:
        cap = CpuCap(folder)
        cap.set(share)
        yield cap
    finally:
        _remove(folder)


def _remove(folder: Path) -> None:
    """Move anything left in the group back to the root group, then remove the group."""
    with contextlib.suppress(OSError):
        for pid in (folder / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # ended meanwhile
                (CPU_CONTROLLER / "cgroup.procs").write_text(pid)
    for _ in range(REMOVE_TRIES - 1):
        try:
            folder.rmdir()
            return
        except OSError:  # a task still leaving: the kernel gives no event to wait on
            time.sleep(0.1)
    folder.rmdir()
