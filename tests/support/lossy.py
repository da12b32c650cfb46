"""A lossy link in the caller's sending direction, made where `Silenced` cuts it: the caller's
ICE sockets. Only RTP is touched (RFC 7983: first byte 128-191, and not an RTCP packet type);
STUN, DTLS and RTCP pass, so the call stays up and feedback (NACK, PLI) gets through."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from tests.support.caller import ScriptedCaller

RTCP_TYPES = range(192, 224)  # SR, RR, SDES, BYE, APP, RTPFB, PSFB, ... (RFC 5761 section 4)


def is_rtp(data: bytes) -> bool:
    return len(data) >= 12 and 128 <= data[0] <= 191 and data[1] not in RTCP_TYPES


class Lossy:
    """While in effect, each RTP packet the caller sends is dropped with probability `loss`,
    or with probability `reorder` held back and sent right after the next one; seeded, so a
    run drops the same share. Retransmissions are RTP too and as likely to be lost; with
    their payload type in `blocked_types` every one is (a hole NACK cannot fill)."""

    def __init__(self, caller: ScriptedCaller, loss: float, reorder: float, seed: int) -> None:
        assert caller.pc is not None
        self._transports = [protocol.transport
                            for ice in caller.pc._RTCPeerConnection__iceTransports
                            for protocol in ice._connection._protocols]
        self._saved: list[Any] = []
        self._random = random.Random(seed)
        self.loss, self.reorder = loss, reorder
        self.sent = self.dropped = self.reordered = 0
        self.dropped_by_type: Counter[int] = Counter()  # RTP payload type -> packets dropped
        self.blocked_types: set[int] = set()  # payload types dropped every time (e.g. RTX)

    def _wrap(self, sendto: Any) -> Any:
        held: list[tuple[bytes, Any]] = []

        def lossy_sendto(data: bytes, addr: Any = None) -> None:
            if not is_rtp(data):
                sendto(data, addr)
                return
            self.sent += 1
            draw = self._random.random()
            holding = False
            if draw < self.loss or data[1] & 0x7F in self.blocked_types:
                self.dropped += 1
                self.dropped_by_type[data[1] & 0x7F] += 1
            elif draw < self.loss + self.reorder and not held:
                self.reordered += 1
                held.append((data, addr))
                holding = True
            else:
                sendto(data, addr)
            if held and not holding:
                sendto(*held.pop())  # the held packet goes right behind this one

        return lossy_sendto

    def __enter__(self) -> Lossy:
        for transport in self._transports:
            self._saved.append(transport.sendto)
            transport.sendto = self._wrap(transport.sendto)
        return self

    def __exit__(self, *exc: object) -> None:
        for transport, sendto in zip(self._transports, self._saved, strict=True):
            transport.sendto = sendto
