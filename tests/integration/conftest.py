"""A real relay and an in-process kiosk on loopback, plus scripted callers."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from typing import AsyncIterator

import pytest

from kioskd.app import KioskApp
from kioskd.call.states import State
from kioskd.config import load_config
from kioskd.relay.server import running_relay
from tests.support import pipewire_echo
from tests.support.caller import ScriptedCaller
from tests.support.redis_server import INSTALL_HINT, running_redis

TOKENS = {
    "kiosk-secret": {"userId": "kiosk", "username": "Lobby kiosk"},
    "alice-secret": {"userId": "alice", "username": "Alice"},
    "bob-secret": {"userId": 42, "username": "Bob"},  # the web app may use numeric ids
}


@pytest.fixture
def redis_server():
    """A private redis-server for one test (see tests/support/redis_server.py)."""
    if shutil.which("redis-server") is None:
        pytest.skip(INSTALL_HINT)
    pytest.importorskip("redis", reason="the redis package is missing: scripts/setup.sh --test")
    with running_redis() as server:
        yield server


@pytest.fixture
def echo_path(tmp_path):
    """A private PipeWire with a room between a loudspeaker and a microphone (see
    tests/support/pipewire_echo.py), its PCMs in ALSA_CONFIG_PATH's file."""
    if not pipewire_echo.available():
        pytest.skip(pipewire_echo.INSTALL_HINT)
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")
    with pipewire_echo.running_echo_path(tmp_path / "echo-path") as path:
        yield path


@pytest.fixture
async def relay():
    async with running_relay(TOKENS) as relay:
        yield relay


@contextlib.asynccontextmanager
async def running_kiosk(url: str, *overrides: str) -> AsyncIterator[KioskApp]:
    state = tempfile.mkdtemp(prefix="kioskd-test-")  # never the machine's /var/lib/kioskd
    settings = [f"signaling.url={url}", "kiosk.name=Test kiosk",
                f"calllog.path={state}/calls.sqlite3", f"control.socket={state}/control.sock",
                "video.width=320", "video.height=240", "video.fps=15",
                "call.ring_timeout_s=5", "call.connect_timeout_s=10",
                "display.mode=none", *overrides]
    app = KioskApp(load_config(None, settings), "kiosk-secret", settings)
    task = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(app.signaling.connected.wait(), 10)
        yield app
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
async def kiosk(relay):
    async with running_kiosk(relay.url) as app:
        yield app


@pytest.fixture
async def alice(relay):
    caller = ScriptedCaller(relay.url, "alice-secret")
    await caller.connect()
    yield caller
    await caller.close()


@pytest.fixture
async def bob(relay):
    caller = ScriptedCaller(relay.url, "bob-secret")
    await caller.connect()
    yield caller
    await caller.close()


async def connected_call(kiosk: KioskApp, caller: ScriptedCaller, call_type: str = "video",
                         **options) -> None:
    await caller.call("kiosk", call_type, **options)
    await caller.receive_answer()
    await asyncio.wait_for(caller.connected.wait(), 10)
    await kiosk.wait_for_state(State.CONNECTED)
