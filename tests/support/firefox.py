"""Debian's Firefox ESR, headless, driven over WebDriver BiDi by puppeteer-core.

Python cannot drive puppeteer itself: `firefox/driver.js` (Node.js) does, and takes one JSON
command a line on stdin from here. It starts as a subprocess of the test process, so Firefox
runs in the suite's private network namespace like every other peer. Nothing is downloaded:
scripts/setup.sh --test installs apt's `firefox-esr` and puppeteer-core (pinned, from
firefox/package-lock.json), and the tests skip with that hint when either is missing.

    async with running_firefox(tmp_path) as firefox:
        page = firefox.page
        await page.goto(url)
        await page.click("#video-call")
        await page.wait_for("window.caller.state === 'connected'")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

DRIVER_DIR = Path(__file__).resolve().parent / "firefox"
FIREFOX = Path("/usr/bin/firefox-esr")
INSTALL_HINT = "scripts/setup.sh --test"
START_TIMEOUT_S = 60.0  # a cold Firefox start on two busy cores
STOP_TIMEOUT_S = 10.0
UI_TIMEOUT_MS = 15_000

log = logging.getLogger("firefox")


def missing() -> str | None:
    """Why Firefox cannot be driven here, or None."""
    if not FIREFOX.exists():
        return f"needs Debian's firefox-esr at {FIREFOX} ({INSTALL_HINT})"
    if shutil.which("node") is None:
        return f"needs Node.js ({INSTALL_HINT})"
    if not (DRIVER_DIR / "node_modules" / "puppeteer-core").is_dir():
        return f"needs puppeteer-core in tests/support/firefox/node_modules ({INSTALL_HINT})"
    return None


def firefox_version() -> str:
    """`firefox-esr --version`, e.g. "Mozilla Firefox 153.8.0esr"."""
    return subprocess.run([str(FIREFOX), "--version"], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


class DriverError(RuntimeError):
    pass


class FirefoxPage:
    """The one tab, with a Playwright-like handful of calls."""

    def __init__(self, driver: Firefox) -> None:
        self._driver = driver

    async def goto(self, url: str) -> None:
        await self._driver.command("goto", url=url)

    async def click(self, selector: str) -> None:
        await self._driver.command("click", selector=selector)

    async def evaluate(self, expression: str, timeout_s: float = UI_TIMEOUT_MS / 1000) -> Any:
        """The value of a JS expression in the page (a promise is awaited)."""
        return await self._driver.command("evaluate", expression=expression,
                                          timeout_s=timeout_s)

    async def wait_for(self, expression: str, timeout_ms: int = UI_TIMEOUT_MS) -> Any:
        """Wait until a JS expression is truthy in the page; its value."""
        return await self._driver.command("waitFor", expression=expression,
                                          timeoutMs=timeout_ms,
                                          timeout_s=timeout_ms / 1000 + 5)

    async def text(self, selector: str) -> str:
        return str(await self.evaluate(f"document.querySelector({json.dumps(selector)})"
                                       ".textContent"))


class Firefox:
    def __init__(self, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.version = ""
        self.browser_pid: int | None = None
        self.page = FirefoxPage(self)
        self.console: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ready: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("driver: %s", line.decode(errors="replace").rstrip())
                continue
            if "ready" in message:
                if not self._ready.done():
                    self._ready.set_result(message)
            elif "console" in message:
                self.console.append(f"{message['console']}: {message['text']}")
                log.info("console %s: %s", message["console"], message["text"])
            elif "pageError" in message:
                self.console.append(f"page error: {message['pageError']}")
                log.error("page error: %s", message["pageError"])
            elif (future := self._pending.pop(message.get("id"), None)) and not future.done():
                if message.get("ok"):
                    future.set_result(message.get("value"))
                else:
                    future.set_exception(DriverError(message.get("error")))
        error = DriverError(f"the Firefox driver exited; its stderr:\n{self.stderr()}")
        if not self._ready.done():
            self._ready.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def command(self, cmd: str, timeout_s: float = UI_TIMEOUT_MS / 1000,
                      **fields: Any) -> Any:
        assert self.process.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        self.process.stdin.write((json.dumps({"id": ident, "cmd": cmd, **fields}) + "\n")
                                 .encode())
        await self.process.stdin.drain()
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._pending.pop(ident, None)

    async def started(self) -> None:
        ready = await asyncio.wait_for(self._ready, START_TIMEOUT_S)
        if not ready.get("ready"):
            raise DriverError(f"Firefox did not start: {ready.get('error')}")
        self.version = ready.get("version") or ""
        self.browser_pid = ready.get("pid")

    async def stop(self) -> None:
        """Close the browser; kill the driver's and Firefox's process groups if it lingers."""
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                await self.command("close", timeout_s=STOP_TIMEOUT_S)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        # puppeteer starts Firefox detached (a process group of its own, content processes
        # included): both groups go, by the ids we were given.
        for pgid in (self.browser_pid, self.process.pid):
            if pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
        if self.process.returncode is None:
            await self.process.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def running_firefox(work_dir: Path) -> AsyncIterator[Firefox]:
    """A fresh headless Firefox ESR (own profile under work_dir) with one tab."""
    profile = work_dir / "firefox-profile"
    profile.mkdir(parents=True, exist_ok=True)
    stderr_path = work_dir / "firefox-driver.log"
    env = dict(os.environ, FIREFOX=str(FIREFOX), HOME=str(work_dir),
               MOZ_CRASHREPORTER_DISABLE="1")
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            "node", str(DRIVER_DIR / "driver.js"), str(profile),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            env=env, start_new_session=True, limit=16 * 1024 * 1024)
    firefox = Firefox(process, stderr_path)
    try:
        await firefox.started()
        yield firefox
    finally:
        await firefox.stop()
