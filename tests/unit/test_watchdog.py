"""The media watchdog's judgement, on a clock the test turns."""

from __future__ import annotations

import asyncio

from kioskd.rtc.watchdog import BACK, LOST, MediaWatchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Handler:
    def __init__(self) -> None:
        self.packets = 0

    async def __call__(self, packet) -> None:
        self.packets += 1


class Side:
    def __init__(self) -> None:
        self._handle_rtp_packet = Handler()
        self._handle_rtcp_packet = Handler()


class Transceiver:
    def __init__(self) -> None:
        self.receiver, self.sender = Side(), Side()


def test_lost_after_the_timeout_back_at_the_next_packet_and_each_said_once():
    clock = Clock()
    watchdog = MediaWatchdog(2.0, clock)
    assert watchdog.check() is None  # nothing heard yet: the connect timeout's business
    transceiver = Transceiver()
    watchdog.listen(transceiver)
    asyncio.run(transceiver.receiver._handle_rtp_packet("rtp"))
    clock.now += 1.9
    assert watchdog.check() is None
    clock.now += 0.2
    assert watchdog.check() == LOST and watchdog.lost
    assert watchdog.check() is None  # said once
    asyncio.run(transceiver.sender._handle_rtcp_packet("a receiver report"))  # RTCP counts
    assert watchdog.check() == BACK and not watchdog.lost
    assert watchdog.check() is None
    assert watchdog.times_lost == 1


def test_the_wrapped_handlers_still_handle_every_packet():
    watchdog = MediaWatchdog(2.0, Clock())
    transceiver = Transceiver()
    original = transceiver.receiver._handle_rtp_packet
    watchdog.listen(transceiver)
    for _ in range(3):
        asyncio.run(transceiver.receiver._handle_rtp_packet("rtp"))
    asyncio.run(transceiver.receiver._handle_rtcp_packet("sr"))
    assert original.packets == 3 and watchdog.last_heard == 100.0


def test_a_late_check_judges_nothing_the_loop_was_held_up_not_the_peer():
    clock = Clock()
    watchdog = MediaWatchdog(2.0, clock)
    transceiver = Transceiver()
    watchdog.listen(transceiver)
    asyncio.run(transceiver.receiver._handle_rtp_packet("rtp"))
    assert watchdog.check() is None
    clock.now += 3.0  # the loop was blocked: the check, due after 0.5 s, runs 3 s later
    assert watchdog.check() is None and not watchdog.lost
    asyncio.run(transceiver.receiver._handle_rtp_packet("rtp read after the stall"))
    clock.now += watchdog.check_interval_s
    assert watchdog.check() is None and watchdog.times_lost == 0
    changes = []
    for _ in range(4):  # then truly quiet, checked on time: lost after timeout_s
        clock.now += watchdog.check_interval_s
        changes.append(watchdog.check())
    assert changes == [None, None, LOST, None]  # 2 s after the last packet, said once
