"""Reconnect delays: exponential backoff with full jitter and a cap.

Pure: randomness is injected."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    # An unauthorized token will not fix itself in seconds: retry slowly, without hammering.
    misconfigured_s: float = 60.0
    rand: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rand() * ceiling

    def misconfigured_delay(self) -> float:
        # Some jitter still, so a fleet with a revoked token does not retry in lockstep.
        self.attempt += 1
        return self.misconfigured_s * (0.75 + 0.5 * self.rand())

    def reset(self) -> None:
        self.attempt = 0
