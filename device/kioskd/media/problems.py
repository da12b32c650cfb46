"""What the kiosk goes without or makes do with: one map from a config key to its problem.

    video.source  -> Problem("busy", "camera 0 is busy ...")
    audio.source  -> Problem("lost", "microphone lost mid-call: No such device")
    video.source  -> Problem(FALLBACK, "refused 1280x720@30; using the basic settings ...")
    audio.sink / display.mode -> the speaker or the screen that could not be opened

The log, `kioskctl status` (media_errors, media_notices) and the screen all read this map, so
they cannot disagree. One callback says that it changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

FALLBACK = "fallback"  # not an error: the device works, with basic settings


@dataclass(frozen=True)
class Problem:
    reason: str  # media.capture.REASONS, "lost" (mid-call), or FALLBACK
    text: str

    @property
    def is_error(self) -> bool:
        return self.reason != FALLBACK


class Problems:
    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.on_change = on_change
        self._map: dict[str, Problem] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._map

    def get(self, key: str) -> Problem | None:
        return self._map.get(key)

    def set(self, key: str, reason: str, text: str) -> None:
        self._update(key, Problem(reason, text))

    def clear(self, key: str) -> None:
        self._update(key, None)

    def _update(self, key: str, problem: Problem | None) -> None:
        if self._map.get(key) == problem:
            return  # no news: a redraw while an answer is being built slows it (the GIL)
        if problem is None:
            del self._map[key]
        else:
            self._map[key] = problem
        if self.on_change is not None:
            self.on_change()

    def snapshot(self) -> dict[str, Problem]:
        return dict(self._map)

    def errors(self) -> dict[str, str]:
        """Config key -> what is wrong (status's media_errors)."""
        return {key: p.text for key, p in self._map.items() if p.is_error}

    def notices(self) -> dict[str, str]:
        """Config key -> the fallback in use (status's media_notices)."""
        return {key: p.text for key, p in self._map.items() if not p.is_error}
