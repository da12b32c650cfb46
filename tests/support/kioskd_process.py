"""The real `kioskd` as a process inside a network namespace a test made (the suite's own
namespace is the machine's to the kiosk: a roam, a NAT, an impaired link are built around it).

Its log lines are kept with the time they arrived; its status is read over the control socket
(a Unix socket: namespaces do not matter). The process is stopped by PID when the block ends,
whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any


class KioskDaemon:
    """`kioskd` as a process in the kiosk's namespace; its log lines kept with the time they
    arrived, its status read over the control socket (a Unix socket: no namespace)."""

    def __init__(self, process: asyncio.subprocess.Process, control: Path) -> None:
        self.process = process
        self.control = control
        self.lines: list[tuple[float, str]] = []
        self._new_line = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))
            self._new_line.set()

    def log(self) -> str:
        return "\n".join(line for _, line in self.lines)

    async def line(self, needle: str, timeout: float, after: float = 0.0) -> float:
        """The time of the first line with `needle` that arrived after `after`."""
        deadline = time.monotonic() + timeout
        while True:
            for at, text in self.lines:
                if at >= after and needle in text:
                    return at
            if self.process.returncode is not None or self._reader.done():
                raise AssertionError(f"kioskd exited before saying {needle!r}:\n{self.log()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"kioskd did not say {needle!r} in {timeout} s:\n"
                                     + self.log()[-4000:])
            self._new_line.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_line.wait(), left)

    async def status(self) -> dict[str, Any]:
        from kioskd.control import request

        reply = await request(self.control, "status")
        return reply["status"]

    async def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float,
                       every: float = 0.05) -> dict[str, Any]:
        """Poll the status until `check(status)`; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):  # the control socket is not there yet
                status = await self.status()
                if check(status):
                    return status
            if time.monotonic() > deadline:
                raise AssertionError(f"kiosk status not reached in {timeout} s: "
                                     f"{status if 'status' in locals() else None}")
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def kioskd_inside(inside: Callable[..., list[str]], url: str, folder: Path,
                        *settings: str) -> AsyncIterator[KioskDaemon]:
    """kioskd run with `inside(argv...)` (e.g. `ip netns exec NAME ...`), registered at `url`
    as "kiosk", its token, control socket and call log in `folder`, 320x240 video, plus
    `settings` (each a --set)."""
    token, control = folder / "token", folder / "control.sock"
    token.write_text("kiosk-secret\n")
    every = [f"signaling.url={url}", f"signaling.token_file={token}",
             f"control.socket={control}", f"calllog.path={folder / 'calls.sqlite3'}",
             "video.width=320", "video.height=240", *settings]
    process = await asyncio.create_subprocess_exec(
        *inside(sys.executable, "-m", "kioskd",
                *[arg for setting in every for arg in ("--set", setting)]),
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    daemon = KioskDaemon(process, control)
    try:
        yield daemon
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(daemon._reader, return_exceptions=True)
