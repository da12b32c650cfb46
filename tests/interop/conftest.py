"""The web app's kind of backend, a Node.js `socket.io` v4 server (node-relay/server.js, written
from PROTOCOL.md alone), run as a subprocess on loopback; an in-process kiosk and scripted
callers talk through it.

Needs Node.js and the relay's node_modules: `scripts/install-node-relay.sh` installs both.
Without them every test here is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from tests.integration.conftest import running_kiosk
from tests.support.caller import ScriptedCaller

RELAY_DIR = Path(__file__).parent / "node-relay"
INSTALL_HINT = "run scripts/install-node-relay.sh"

TOKENS = {
    "kiosk-secret": {"userId": "kiosk", "username": "Lobby kiosk"},  # running_kiosk's token
    "alice-secret": {"userId": "alice", "username": "Alice"},
    "bob-secret": {"userId": 42, "username": "Bob"},  # the web app may use numeric ids
    "mallory-secret": {"userId": "mallory", "username": "Mallory"},
}

START_TIMEOUT_S = 15.0  # a cold `node` start on a Pi takes a few seconds
STOP_TIMEOUT_S = 5.0


def node_relay_missing() -> str | None:
    """Why the Node relay cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return f"Node.js (`node`) is not installed: {INSTALL_HINT}"
    if not (RELAY_DIR / "node_modules" / "socket.io").is_dir():
        return f"the Node relay's node_modules (socket.io) is missing: {INSTALL_HINT}"
    return None


@dataclass
class NodeRelay:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def running_node_relay(tokens: dict[str, Any], workdir: Path, *,
                             fields: str = "passthrough") -> AsyncIterator[NodeRelay]:
    """Start `node server.js`, wait for its `LISTENING <port>` line, stop it with SIGTERM."""
    reason = node_relay_missing()
    if reason:
        pytest.skip(reason)
    tokens_path = workdir / "node-relay-tokens.json"
    tokens_path.write_text(json.dumps(tokens))
    log_path = workdir / "node-relay.log"
    env = dict(os.environ, RELAY_FIELDS=fields)
    with open(log_path, "wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            shutil.which("node"), str(RELAY_DIR / "server.js"), str(tokens_path), "0",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log_file,
            cwd=RELAY_DIR, env=env)
    relay: NodeRelay | None = None
    try:
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            line = b""
        words = line.decode(errors="replace").split()
        if len(words) != 2 or words[0] != "LISTENING" or not words[1].isdigit():
            pytest.fail(f"the Node relay did not start (first line {line!r}):\n"
                        + log_path.read_text(errors="replace"))
        relay = NodeRelay(f"http://127.0.0.1:{words[1]}", process, log_path)
        yield relay
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
                pytest.fail("the Node relay did not exit on SIGTERM")
            if process.returncode != 0:
                pytest.fail(f"the Node relay exited {process.returncode} on SIGTERM")
        if relay is not None:
            print("---- node relay log ----\n" + relay.log())  # shown when a test fails


@pytest.fixture
async def node_relay(tmp_path):
    async with running_node_relay(TOKENS, tmp_path) as relay:
        yield relay


@pytest.fixture
async def kiosk(node_relay):
    async with running_kiosk(node_relay.url) as app:
        yield app


@contextlib.asynccontextmanager
async def connected_caller(url: str, token: str) -> AsyncIterator[ScriptedCaller]:
    caller = ScriptedCaller(url, token)
    await caller.connect()
    try:
        yield caller
    finally:
        await caller.close()


@pytest.fixture
async def alice(node_relay):
    async with connected_caller(node_relay.url, "alice-secret") as caller:
        yield caller


@pytest.fixture
async def bob(node_relay):
    async with connected_caller(node_relay.url, "bob-secret") as caller:
        yield caller


@pytest.fixture
async def mallory(node_relay):
    async with connected_caller(node_relay.url, "mallory-secret") as caller:
        yield caller
