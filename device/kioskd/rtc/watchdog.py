"""Noticing a lost media path: nothing from the peer, neither RTP nor RTCP, for `timeout_s`.

aiortc declares a dead path failed only after its consent checks have gone unanswered for
about 30 s, and its connection state never becomes "disconnected", so a call whose link went
down would look connected for half a minute while the far end (a browser ends a call after 3 s
of "disconnected") has long given up. A peer in a call sends something many times a second:
audio every 20 ms, video every frame, RTCP reports every second or so (even from a muted
browser). The watchdog notes the time of each packet from the peer; the call runner asks it
every `check_interval_s` whether the path was lost, or is back.

A check that comes late proves nothing: the event loop itself was held up (a slow start of a
codec, a busy CPU), so the peer's packets may be waiting unread in the socket. Such a check
judges nothing; the next one, after the loop has had time to read them, does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LOST, BACK = "lost", "back"


class MediaWatchdog:
    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self.last_heard: float | None = None  # None: nothing yet (the connect timeout's job)
        self.lost = False
        self.times_lost = 0
        self.check_interval_s = timeout_s / 4
        self._last_check: float | None = None

    def listen(self, transceiver: Any) -> None:
        """Note every RTP and RTCP packet the peer sends on this transceiver. aiortc's DTLS
        transport looks these handlers up on each packet, so the wrappers see them all."""
        receiver, sender = transceiver.receiver, transceiver.sender
        for owner, name in ((receiver, "_handle_rtp_packet"), (receiver, "_handle_rtcp_packet"),
                            (sender, "_handle_rtcp_packet")):
            setattr(owner, name, self._noting(getattr(owner, name)))

    def _noting(self, handle: Callable[..., Any]) -> Callable[..., Any]:
        async def noted(*args: Any, **kwargs: Any) -> None:
            self.last_heard = self._clock()
            await handle(*args, **kwargs)
        return noted

    def declare_lost(self) -> bool:
        """The path is known to be gone (the address it ran over is): LOST now, without
        waiting out `timeout_s`. False if it was lost already."""
        if self.lost:
            return False
        self.lost = True
        self.times_lost += 1
        return True

    def check(self) -> str | None:
        """LOST when the peer has just gone quiet for `timeout_s`, BACK when it is heard again
        after that, else None. Call it every `check_interval_s`."""
        now = self._clock()
        late = (self._last_check is not None
                and now - self._last_check > 2 * self.check_interval_s)
        self._last_check = now
        if self.last_heard is None or late:
            return None
        quiet = now - self.last_heard >= self.timeout_s
        if quiet and self.declare_lost():
            return LOST
        if not quiet and self.lost:
            self.lost = False
            return BACK
        return None
