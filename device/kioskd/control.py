"""The admin socket kioskctl talks to: one JSON request per line, one JSON reply per line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .call import events as ev
from .config import config_as_dict

if TYPE_CHECKING:
    from .app import KioskApp

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
# kioskctl's commands that are just an event for the call machine.
COMMAND_EVENTS: dict[str, type[ev.AnswerCall | ev.Decline | ev.Hangup]] = {
    "answer": ev.AnswerCall, "decline": ev.Decline, "hangup": ev.Hangup}


def socket_path(configured: str, env: dict[str, str] | None = None) -> Path:
    """Where the daemon listens: the configured path, else systemd's RuntimeDirectory, else the
    user's runtime directory. kioskctl computes the same from the same config."""
    env = dict(os.environ) if env is None else env
    if configured:
        return Path(configured)
    if env.get("RUNTIME_DIRECTORY"):  # set by systemd's RuntimeDirectory=
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "control.sock"
    if os.geteuid() == 0:
        return Path("/run/kioskd/control.sock")
    runtime = env.get("XDG_RUNTIME_DIR") or f"/tmp/kioskd-{os.getuid()}"
    return Path(runtime) / "kioskd" / "control.sock"


class AnotherDaemon(RuntimeError):
    """Another kioskd answers on our control socket: this one must not start."""


async def answers(path: Path, timeout: float = 2.0) -> bool:
    """Whether a daemon is listening on the socket at `path` (False for a stale file)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (TimeoutError, FileNotFoundError, ConnectionRefusedError):
        return False
    except PermissionError:
        return True  # someone else's socket: not ours to take over
    writer.close()
    return True


class ControlServer:
    """The socket kioskctl talks to. Started first: a second kioskd (or the demo beside the
    service) refuses to start instead of taking the first one's socket over."""

    name = "control socket"

    def __init__(self, app: KioskApp, path: Path) -> None:
        self.app = app
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None  # our socket file, so that we remove only ours

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists():
            if await answers(self.path):
                raise AnotherDaemon(
                    f"another kioskd is running: it answers on {self.path}. Stop it first "
                    "(systemctl stop kioskd), or give this one its own control.socket")
            log.info("removing the stale control socket %s (a daemon that was killed)",
                     self.path)
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES)
        os.chmod(self.path, 0o660)
        self._inode = self.path.stat().st_ino
        log.info("control socket at %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            try:
                if self.path.stat().st_ino == self._inode:
                    self.path.unlink()
            except FileNotFoundError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            reply = await self.handle(line)
        except (TimeoutError, asyncio.LimitOverrunError, ValueError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        try:
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'expected a JSON object with a "command"'}
        app = self.app
        if command == "status":
            return {"ok": True, "status": app.status()}
        if command == "calls":
            recorder = app.calllog.recorder
            if recorder is None:
                return {"ok": False, "error": "the call log is not open; see the daemon's log"}
            limit = request.get("limit", 20)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 10000:
                return {"ok": False, "error": "limit must be a whole number from 1 to 10000"}
            calls = await recorder.recent(limit, bool(request.get("missed")))
            return {"ok": True, "calls": calls}
        if command == "config":
            # Where the running daemon's config came from, so that kioskctl's config show and
            # selftest see what the daemon sees (the demo's config is all --set).
            config = app.config
            return {"ok": True, "path": str(config.path) if config.path else None,
                    "overrides": list(app.overrides),
                    "config": config_as_dict(config, mask_secrets=True)}
        if command == "call":
            try:
                target = app.place_call(request.get("user"), request.get("type", "video"))
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True, "calling": target}
        if command == "reload":
            return {"ok": True} if app.reload() else {
                "ok": False, "error": "the config has errors; see the daemon's log"}
        if command in ("mute", "camera"):
            off = request.get("off")
            if off is not None and not isinstance(off, bool):
                return {"ok": False, "error": '"off" must be true, false or absent (toggle)'}
            off = app.set_muted("audio" if command == "mute" else "video", off)
            return {"ok": True, "off": off}
        if command in COMMAND_EVENTS:
            app.post(COMMAND_EVENTS[command]())
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {command!r}"}


async def request(path: Path, command: str, **fields: Any) -> dict[str, Any]:
    """kioskctl's side: send one request and read the reply."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(json.dumps({"command": command, **fields}).encode() + b"\n")
        await writer.drain()
        return json.loads(await asyncio.wait_for(reader.readline(), timeout=10))
    finally:
        writer.close()
