"""sd_notify and the watchdog against real AF_UNIX datagram sockets, as systemd listens."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from kioskd.health import Notifier, status_line, watchdog_interval, watchdog_loop


class FakeSystemd:
    """A bound notify socket; a thread stamps each datagram with its arrival time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.messages: list[tuple[float, str]] = []
        self.arrived = threading.Condition()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self.arrived:
                self.messages.append((time.monotonic(), data.decode()))
                self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[float, str]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"got {len(self.messages)}/{count} messages: "
                                     f"{self.messages}")
            return list(self.messages)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(str(tmp_path / "notify"))
    yield fake
    fake.close()


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    fake = FakeSystemd(f"@kioskd-test-{uuid.uuid4().hex}")
    yield fake
    fake.close()


def test_messages_arrive(systemd: FakeSystemd) -> None:
    notifier = Notifier(env={"NOTIFY_SOCKET": systemd.address})
    assert notifier.enabled
    assert notifier.ready("idle, online")
    assert notifier.status("in call with\nReception")
    assert notifier.watchdog()
    assert notifier.stopping()
    texts = [text for _, text in systemd.wait_for(4)]
    assert texts == ["READY=1\nSTATUS=idle, online", "STATUS=in call with Reception",
                     "WATCHDOG=1", "STOPPING=1"]
    notifier.close()


def test_reloading_carries_the_monotonic_clock(systemd: FakeSystemd) -> None:
    notifier = Notifier(systemd.address)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    notifier.ready()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    (_, reloading), (_, ready) = systemd.wait_for(2)
    first, second = reloading.split("\n")
    assert first == "RELOADING=1" and ready == "READY=1"
    assert second.startswith("MONOTONIC_USEC=")
    assert before <= int(second.split("=")[1]) <= after


def test_abstract_socket(abstract_systemd: FakeSystemd) -> None:
    notifier = Notifier(env={"NOTIFY_SOCKET": abstract_systemd.address})
    assert notifier.ready()
    assert [text for _, text in abstract_systemd.wait_for(1)] == ["READY=1"]


def test_no_op_without_systemd(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet = Notifier(env={})
    assert not quiet.enabled
    assert not quiet.ready() and not quiet.watchdog()
    # A socket that went away: logged once, never raised.
    gone = Notifier(str(tmp_path / "nobody-listens"))
    assert not gone.status("x") and not gone.status("y")
    assert len([r for r in caplog.records if "sd_notify" in r.message]) == 1


def test_status_line() -> None:
    assert status_line("idle", "online") == "idle, online"
    assert status_line("idle", "unauthorized") == "idle, unauthorized"
    assert status_line("connected", "online", "Reception") == "in call with Reception"
    assert status_line("ringing", "online", "Alice") == "ringing: call from Alice"
    assert status_line("calling", "offline", "42") == "calling 42, offline"
    assert status_line("connecting", "online") == "connecting"


def test_watchdog_interval() -> None:
    me = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": me}) == 0.1
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def _gaps(messages: list[tuple[float, str]]) -> list[float]:
    stamps = [at for at, text in messages if text == "WATCHDOG=1"]
    return [b - a for a, b in zip(stamps, stamps[1:])]


async def test_watchdog_pings_at_half_the_timeout(systemd: FakeSystemd) -> None:
    interval = watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    task = asyncio.create_task(watchdog_loop(Notifier(systemd.address), interval))
    try:
        messages = await asyncio.to_thread(systemd.wait_for, 6)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = _gaps(messages)
    print(f"watchdog gaps (s): {[round(g, 3) for g in gaps]}")
    assert 0.09 <= statistics.median(gaps) <= 0.15
    assert max(gaps) < 0.2  # every ping inside systemd's 200 ms timeout


async def test_a_blocked_loop_stops_the_pings(systemd: FakeSystemd) -> None:
    task = asyncio.create_task(watchdog_loop(Notifier(systemd.address), 0.1))
    try:
        await asyncio.to_thread(systemd.wait_for, 2)
        time.sleep(0.5)  # the bug being simulated: blocking code on the event loop
        messages = await asyncio.to_thread(systemd.wait_for, len(systemd.messages) + 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = _gaps(messages)
    print(f"watchdog gaps (s): {[round(g, 3) for g in gaps]}")
    assert max(gaps) >= 0.45  # past a 200 ms WatchdogSec: systemd would restart us


async def test_without_a_watchdog_the_loop_just_waits(systemd: FakeSystemd) -> None:
    task = asyncio.create_task(watchdog_loop(Notifier(systemd.address), None))
    done, _ = await asyncio.wait([task], timeout=0.05)
    assert not done  # still running: safe among the daemon's long-lived tasks
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert systemd.messages == []
