"""The kiosk on its own network namespace, joined to the suite's by a veth pair: when its
address changes (a roam, a new DHCP lease) it registers again at once, not when Engine.IO's
ping times out (~45 s), and a caller gets through."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from kioskd.relay.server import running_relay
from tests.integration.conftest import TOKENS
from tests.support.caller import ScriptedCaller
from tests.support.topology import joined_namespace

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


async def next_line(stream: asyncio.StreamReader, needle: str, timeout: float) -> str:
    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"kioskd exited before saying {needle!r}")
            if needle in line:
                return line
    return await asyncio.wait_for(scan(), timeout)


async def test_a_new_address_registers_again_at_once_and_calls_get_through(tmp_path):
    with joined_namespace() as kiosk_net:
        async with running_relay(TOKENS, host=kiosk_net.near) as relay:
            token = tmp_path / "token"
            token.write_text("kiosk-secret\n")
            kiosk = await asyncio.create_subprocess_exec(
                *kiosk_net.inside(sys.executable, "-m", "kioskd",
                                  "--set", f"signaling.url={relay.url}",
                                  "--set", f"signaling.token_file={token}",
                                  "--set", f"control.socket={tmp_path / 'control.sock'}",
                                  "--set", f"calllog.path={tmp_path / 'calls.sqlite3'}",
                                  "--set", "video.width=320", "--set", "video.height=240"),
                stderr=asyncio.subprocess.PIPE)
            caller = ScriptedCaller(relay.url, "alice-secret")
            try:
                await next_line(kiosk.stderr, "connected to signaling server", 15)
                # A roam: the old address goes, with its TCP connection, and a while later
                # a new one comes (another access point, a new lease).
                kiosk_net.ip("addr", "del", f"{kiosk_net.far}/24", "dev", kiosk_net.far_link)
                await next_line(kiosk.stderr, "reconnecting to", 5)
                await next_line(kiosk.stderr, "cannot reach signaling server", 5)
                kiosk_net.ip("addr", "add", "192.0.2.3/24", "dev", kiosk_net.far_link)
                roamed = time.monotonic()
                await next_line(kiosk.stderr, "connected to signaling server", 5)
                assert time.monotonic() - roamed < 2.0
                drain = asyncio.ensure_future(kiosk.stderr.read())
                await caller.connect()
                await caller.call("kiosk")
                answer = await caller.receive_answer(timeout=10)
                assert answer["from"] == "kiosk"
                await asyncio.wait_for(caller.connected.wait(), 10)
                await caller.sink.wait_for_frames(video=5, timeout=10)
                kiosk.terminate()
                await asyncio.wait_for(kiosk.wait(), 10)
                await drain
            finally:
                if kiosk.returncode is None:
                    kiosk.kill()
                    await kiosk.wait()
                await caller.close()
