"""Who the kiosk answers, and when. Pure: the machine asks, the config decides."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..protocol import PeerId


class Action(str, Enum):
    ANSWER = "answer"  # answer now
    AUTO_ANSWER_LATER = "auto-answer later"  # ring for `delay_s`, then answer
    RING = "ring"  # ring until a person answers (manual mode) or the ring timeout
    REFUSE = "refuse"  # reject with reason "policy"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0


@dataclass(frozen=True)
class AnswerPolicy:
    mode: str = "always"  # always | allowlist | manual
    allow: tuple[str, ...] = ()
    delay_s: float = 0.0

    def decide(self, peer: PeerId) -> Decision:
        if self.mode == "manual":
            return Decision(Action.RING)
        if self.mode == "allowlist" and str(peer) not in self.allow:
            return Decision(Action.REFUSE)
        if self.delay_s > 0:
            return Decision(Action.AUTO_ANSWER_LATER, self.delay_s)
        return Decision(Action.ANSWER)
