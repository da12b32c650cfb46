"""The one hand-off between a device thread and the event loop.

A device (camera, encoder, microphone) runs in a thread of its own and must never wait for
the event loop; the loop must never wait for the device. They meet in a `Handoff`: a small
queue that the thread `put`s into and the loop `get`s from. When it is full, the oldest item
goes: a late consumer gets the newest picture or sound, never a backlog. The thread ends it
with `close(error)`; `get` then raises `HandoffClosed` once the queue is empty.

`call_soon(loop, callback, *args)` is the one way a thread wakes the loop: it does nothing
once the loop has closed (nobody is listening any more).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def call_soon(loop: asyncio.AbstractEventLoop | None, callback: Callable[..., Any],
              *args: Any) -> None:
    """Run `callback(*args)` on `loop` from any thread; a no-op if there is no loop any more."""
    if loop is None:
        return
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed
        pass


class HandoffClosed(Exception):
    """The producer has ended and everything it handed over has been taken."""


class Handoff(Generic[T]):
    """A bounded queue from one thread to the event loop that drops the oldest when full.

    `put`, `clear` and `close` may be called from any thread and never block; `get`, `wait`
    and `get_nowait` belong to the loop. The loop is learnt at the first `get` or `wait`
    (items put before that wait in the queue). `dropped` counts items that were pushed out
    unread.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"a hand-off holds at least 1 item, not {maxsize}")
        self.maxsize = maxsize
        self.dropped = 0
        self.error: str | None = None  # why the producer ended, if it failed
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the producer's side (any thread) ---------------------------------------------------

    def put(self, item: T) -> int:
        """Hand over `item`; returns how many old items were dropped to make room (0 or 1).
        Ignored once closed."""
        dropped = 0
        with self._lock:
            if self._closed:
                return 0
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                dropped = 1
                self.dropped += 1
            self._items.append(item)
        self._wake()
        return dropped

    def clear(self, keep: int = 0) -> int:
        """Drop what is waiting but the newest `keep` items (counted in `dropped`): a consumer
        that wants only what is current; returns how many were dropped."""
        with self._lock:
            count = max(0, len(self._items) - keep)
            for _ in range(count):
                self._items.popleft()
            self.dropped += count
        return count

    def close(self, error: str | None = None) -> None:
        """No more items will come (`error`: because the producer failed). What is queued can
        still be taken; then `get` raises HandoffClosed. Safe to call more than once."""
        with self._lock:
            self._closed = True
            if error is not None and self.error is None:
                self.error = error
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            call_soon(self._loop, self._wakeup.set)

    # -- the event loop's side --------------------------------------------------------------

    def get_nowait(self) -> T | None:
        """The oldest item waiting, or None; raises HandoffClosed when closed and empty."""
        with self._lock:
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise HandoffClosed(self.error or "closed")
        return None

    async def wait(self) -> None:
        """Wait until an item is waiting or the hand-off is closed, taking nothing: for a
        consumer that only needs to know the producer has begun (or ended)."""
        if self._wakeup is None:
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()
        while True:
            self._wakeup.clear()
            with self._lock:
                if self._items or self._closed:
                    return
            await self._wakeup.wait()

    async def get(self) -> T:
        """Wait for the next item; raises HandoffClosed when closed and empty."""
        while True:
            await self.wait()
            item = self.get_nowait()
            if item is not None:
                return item
