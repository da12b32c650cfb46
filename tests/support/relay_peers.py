"""For relay tests: a bare Socket.IO client, /healthz, and kioskd-relay as a process."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import socketio

TIMEOUT = 5


class Peer:
    """A real Socket.IO client that queues everything it receives."""

    def __init__(self, **client_options) -> None:
        self.sio = socketio.AsyncClient(reconnection=False, **client_options)
        self.events: asyncio.Queue = asyncio.Queue()
        self.connect_errors: asyncio.Queue = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._on_any)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_any(self, event, *args):
        await self.events.put((event, *args))

    async def _on_connect_error(self, data):
        await self.connect_errors.put(data)

    async def _on_disconnect(self, *args):
        self.disconnected.set()

    async def connect(self, url: str, token: str | None, **options) -> None:
        auth = {"token": token} if token is not None else None
        await self.sio.connect(url, auth=auth, wait_timeout=TIMEOUT, **options)

    async def next(self) -> tuple:
        return await asyncio.wait_for(self.events.get(), TIMEOUT)


async def healthz(url: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 200
            return await resp.json()


async def run_cli(*args: str, **options) -> asyncio.subprocess.Process:
    """`kioskd-relay ARGS` from this checkout, whether or not the package is installed."""
    src = str(Path(__file__).resolve().parents[2] / "device")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from kioskd.relay.server import main; sys.exit(main())",
        *args, env=env, **options)
