"""When to show each of the caller's video frames: on the sender's clock, a little late.

A frame is decoded as soon as its packets are in, so network jitter reaches the screen as
uneven gaps, and a frame that waited for a retransmission (about a round trip) shows as a
freeze followed by a burst, of which the screen keeps only the newest frame. A browser shows
each frame at its capture time (RTP timestamp) plus a small adaptive delay (its "jitter
buffer delay"); `PlayoutClock` does the same, so that a frame that is only a little late
fills its slot instead of leaving a hole:

- `transit` = arrival time - media time. The smallest transit over the last WINDOW_S is the
  path's delay when nothing waited; a frame's lateness is how much more it took.
- The delay added is the LATENESS_QUANTILE of recent lateness, capped at MAX_DELAY_S: on a
  quiet link a few milliseconds, on a jittery one enough to absorb the jitter, never a whole
  retransmission (a browser's buffer tops out near this too, and latency matters more).
- A frame is due at media time + smallest transit + delay; one already past due is shown at
  once. A jump in media time (a new stream after a re-offer) starts the clock over.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 2.0  # lateness and the smallest transit are taken over this much media time
LATENESS_QUANTILE = 0.9
MAX_DELAY_S = 0.06  # the most a frame is held back for the frames behind it
MAX_JUMP_S = 1.0  # media time moving more than this (or backwards) is a new stream


class PlayoutClock:
    """`wait(media_time, now)`: seconds to hold a frame before it is shown (0: show now)."""

    def __init__(self) -> None:
        self._transits: deque[tuple[float, float]] = deque()  # (media time, transit), in order
        self._last_media: float | None = None
        self.delay_s = 0.0  # the delay currently added, for the status

    def wait(self, media_time: float, now: float) -> float:
        if self._last_media is not None and not (
            0 <= media_time - self._last_media <= MAX_JUMP_S
        ):
            self._transits.clear()
        self._last_media = media_time
        transit = now - media_time
        self._transits.append((media_time, transit))
        while self._transits[0][0] < media_time - WINDOW_S:
            self._transits.popleft()
        fastest = min(t for _, t in self._transits)
        lateness = sorted(t - fastest for _, t in self._transits)
        self.delay_s = min(MAX_DELAY_S, lateness[int(LATENESS_QUANTILE * (len(lateness) - 1))])
        due = media_time + fastest + self.delay_s
        return max(0.0, due - now)
