"""The thread-to-loop hand-off: bounded, drops the oldest, ends with close()."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kioskd.handoff import Handoff, HandoffClosed, call_soon


def test_drops_the_oldest_when_full():
    handoff: Handoff[int] = Handoff(2)
    assert [handoff.put(i) for i in range(4)] == [0, 0, 1, 1]
    assert handoff.dropped == 2 and len(handoff) == 2
    assert handoff.get_nowait() == 2 and handoff.get_nowait() == 3
    assert handoff.get_nowait() is None


def test_close_lets_the_queue_drain_then_raises_with_the_error():
    handoff: Handoff[str] = Handoff(3)
    handoff.put("a")
    handoff.close("camera unplugged")
    handoff.put("ignored")
    assert handoff.get_nowait() == "a"
    with pytest.raises(HandoffClosed, match="camera unplugged"):
        handoff.get_nowait()
    assert handoff.error == "camera unplugged"


def test_clear_counts_what_it_drops():
    handoff: Handoff[int] = Handoff(5)
    for i in range(3):
        handoff.put(i)
    assert handoff.clear() == 3 and handoff.dropped == 3 and len(handoff) == 0


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        Handoff(0)


async def test_get_waits_for_a_thread_and_wakes_on_close():
    handoff: Handoff[int] = Handoff(2)
    waiting = asyncio.ensure_future(handoff.get())
    await asyncio.sleep(0)  # let get() learn the loop and wait
    producer = threading.Thread(target=handoff.put, args=(7,))
    producer.start()
    assert await asyncio.wait_for(waiting, 5) == 7
    producer.join()

    closing = asyncio.ensure_future(handoff.get())
    await asyncio.sleep(0)
    threading.Thread(target=handoff.close).start()
    with pytest.raises(HandoffClosed):
        await asyncio.wait_for(closing, 5)


async def test_call_soon_runs_on_the_loop_and_ignores_a_closed_one():
    loop = asyncio.get_running_loop()
    ran = asyncio.Event()
    threading.Thread(target=call_soon, args=(loop, ran.set)).start()
    await asyncio.wait_for(ran.wait(), 5)

    closed = asyncio.new_event_loop()
    closed.close()
    call_soon(closed, ran.set)  # no RuntimeError
    call_soon(None, ran.set)


def test_clear_can_keep_the_newest():
    handoff: Handoff[int] = Handoff(10)
    for i in range(6):
        handoff.put(i)
    assert handoff.clear(keep=2) == 4 and handoff.dropped == 4
    assert [handoff.get_nowait(), handoff.get_nowait()] == [4, 5]
    assert handoff.clear(keep=2) == 0 and handoff.dropped == 4


async def test_wait_returns_on_the_first_item_without_taking_it():
    handoff: Handoff[str] = Handoff(2)
    waiting = asyncio.ensure_future(handoff.wait())
    await asyncio.sleep(0)  # let wait() learn the loop and wait
    assert not waiting.done()
    threading.Thread(target=handoff.put, args=("first",)).start()
    await asyncio.wait_for(waiting, 5)
    assert len(handoff) == 1 and handoff.get_nowait() == "first"


async def test_wait_returns_when_closed_empty():
    handoff: Handoff[str] = Handoff(2)
    waiting = asyncio.ensure_future(handoff.wait())
    await asyncio.sleep(0)
    threading.Thread(target=handoff.close, args=("device gone",)).start()
    await asyncio.wait_for(waiting, 5)
    with pytest.raises(HandoffClosed, match="device gone"):
        handoff.get_nowait()
