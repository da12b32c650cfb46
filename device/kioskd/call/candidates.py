"""The ICE candidates a call receives before it has a connection to give them to. Pure.

Browsers trickle candidates right behind their offer, and they may overtake it: a few are kept
while idle (`early`) and handed to the offer they belong to. While a call rings, its candidates
wait (`hold`) until it is answered (`take`). Both are bounded: a dozen is a call, more is a
flood.
"""

from __future__ import annotations

from .. import protocol
from ..protocol import IceCandidate

# Browsers trickle a dozen candidates at most; more is a flood, not a call.
MAX_PENDING_CANDIDATES = 64


class PendingCandidates:
    def __init__(self) -> None:
        self._early: list[protocol.Candidate] = []  # overtook their offer
        self._held: list[IceCandidate] = []  # of the current call, before its connection

    def early(self, message: protocol.Candidate) -> None:
        """A candidate while idle: kept (the newest few) for the offer it may belong to."""
        self._early = (self._early + [message])[-MAX_PENDING_CANDIDATES:]

    def adopt(self, peer: protocol.PeerId, call_id: str) -> None:
        """A new call from `peer`: hold its early candidates (or those of no call in
        particular), forget the rest."""
        self._held = [c.candidate for c in self._early
                      if protocol.same_peer(c.peer, peer)
                      and (c.call_id is None or c.call_id == call_id)]
        self._early = []

    def hold(self, candidate: IceCandidate) -> None:
        if len(self._held) < MAX_PENDING_CANDIDATES:
            self._held.append(candidate)

    def take(self) -> tuple[IceCandidate, ...]:
        """The held candidates, for the connection that is made now."""
        held, self._held = tuple(self._held), []
        return held

    def clear(self, early: bool = False) -> None:
        self._held = []
        if early:
            self._early = []
