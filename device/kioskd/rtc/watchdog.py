"""Noticing a lost media path: nothing from the peer, neither RTP nor RTCP, for `timeout_s`.

aiortc declares a dead path failed only after its consent checks have gone unanswered for
about 30 s, and its connection state never becomes "disconnected", so a call whose link went
down would look connected for half a minute while the far end (a browser ends a call after 3 s
of "disconnected") has long given up. A peer in a call sends something many times a second:
audio every 20 ms, video every frame, RTCP reports every second or so (even from a muted
browser). The watchdog notes the time of each packet from the peer; the call runner asks it a
few times per `timeout_s` whether the path was lost, or is back.
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

    def check(self) -> str | None:
        """LOST when the peer has just gone quiet for `timeout_s`, BACK when it is heard again
        after that, else None."""
        if self.last_heard is None:
            return None
        quiet = self._clock() - self.last_heard >= self.timeout_s
        if quiet and not self.lost:
            self.lost = True
            self.times_lost += 1
            return LOST
        if not quiet and self.lost:
            self.lost = False
            return BACK
        return None
