"""Answer policy and reconnect backoff, with injected randomness."""

from kioskd.policy.answer import Action, AnswerPolicy, Decision
from kioskd.policy.backoff import Backoff


def test_answer_modes():
    assert AnswerPolicy("always").decide("x") == Decision(Action.ANSWER)
    assert AnswerPolicy("manual").decide("x") == Decision(Action.RING)
    allow = AnswerPolicy("allowlist", ("7", "bob"))
    assert allow.decide(7).action is Action.ANSWER
    assert allow.decide("eve").action is Action.REFUSE
    assert AnswerPolicy("always", delay_s=2).decide("x") == Decision(Action.AUTO_ANSWER_LATER, 2)


def test_backoff_is_exponential_capped_and_fully_jittered():
    top = Backoff(base_s=0.5, cap_s=8, rand=lambda: 1.0)
    assert [top.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 8, 8]
    bottom = Backoff(rand=lambda: 0.0)
    assert bottom.next_delay() == 0.0
    top.reset()
    assert top.next_delay() == 0.5


def test_backoff_never_overflows_after_days_offline():
    b = Backoff(cap_s=30, rand=lambda: 1.0)
    for _ in range(10_000):
        delay = b.next_delay()
    assert delay == 30


def test_misconfigured_retry_is_slow_but_jittered():
    assert Backoff(misconfigured_s=60, rand=lambda: 0.0).misconfigured_delay() == 45
    assert Backoff(misconfigured_s=60, rand=lambda: 1.0).misconfigured_delay() == 75
