"""The playout clock: each caller frame shown at its media time plus a small, adaptive delay."""

from __future__ import annotations

import random

import pytest

from kioskd.ui.pacing import MAX_DELAY_S, PlayoutClock

FRAME_S = 0.05  # 20 fps


def shown_at(arrivals: list[float], media: list[float]) -> list[float]:
    clock = PlayoutClock()
    return [now + clock.wait(m, now) for m, now in zip(media, arrivals, strict=True)]


def test_frames_on_a_steady_path_are_shown_as_they_arrive():
    media = [i * FRAME_S for i in range(100)]
    arrivals = [m + 0.04 for m in media]
    assert shown_at(arrivals, media) == pytest.approx(arrivals)


def test_jitter_is_absorbed_and_frames_are_shown_evenly():
    rng = random.Random(1)
    media = [i * FRAME_S for i in range(200)]
    arrivals = [m + 0.04 + rng.uniform(-0.015, 0.015) for m in media]
    shown = shown_at(arrivals, media)[50:]  # once the window has filled
    gaps = [b - a for a, b in zip(shown, shown[1:], strict=False)]
    raw = [b - a for a, b in zip(arrivals[50:], arrivals[51:], strict=False)]
    spread = max(gaps) - min(gaps)
    assert spread < (max(raw) - min(raw)) / 2, (spread, max(raw) - min(raw))
    # Never held back longer than the cap beyond the fastest path.
    assert all(s - a <= MAX_DELAY_S + 1e-9 for s, a in zip(shown, arrivals[50:], strict=True))


def test_a_frame_late_by_a_retransmission_leaves_a_shorter_gap():
    rng = random.Random(2)
    media = [i * FRAME_S for i in range(120)]
    arrivals = [m + 0.04 + rng.uniform(-0.015, 0.015) for m in media]
    arrivals[99] = media[99] + 0.04 - 0.015  # on the fastest path: held for the jitter
    arrivals[100] = media[100] + 0.04 + 0.15  # waited for a retransmission
    for later in range(101, 104):  # the frames behind it come out with it
        arrivals[later] = max(arrivals[later], arrivals[100])
    shown = shown_at(arrivals, media)
    assert arrivals[100] - arrivals[99] > 0.2  # a freeze, shown as it arrived
    assert shown[100] - shown[99] < arrivals[100] - arrivals[99] - 0.015
    assert shown[100] - shown[99] < 0.2


def test_a_new_stream_starts_the_clock_over():
    clock = PlayoutClock()
    for i in range(50):
        clock.wait(100 + i * FRAME_S, 10 + i * FRAME_S)
    # A re-offer: a new track whose media time starts again at 0, arriving on time.
    assert clock.wait(0.0, 12.6) == 0.0
    assert clock.wait(FRAME_S, 12.6 + FRAME_S) == pytest.approx(0.0)
