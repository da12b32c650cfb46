"""Keyboard, touch and mouse to commands.

A command is one of the strings in COMMANDS; the app maps them to call events (answer,
decline, hang up, place a call) and to toggles (mute_mic, camera_off). The tables and
`command_for_key`, `hit`, `allowed` are pure; `translate` turns a pygame event into an
`Input` and runs in the render thread, which owns SDL (pygame is imported there, so this
module imports without SDL).

Keys (also in docs/screen.md):

    A answer      D decline     H or Esc hang up     C call the contact
    M mute mic    V camera off  Enter or Space: the screen's main action
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ANSWER, DECLINE, HANGUP, CALL, MUTE_MIC, CAMERA_OFF = (
    "answer", "decline", "hangup", "call", "mute_mic", "camera_off")
COMMANDS = (ANSWER, DECLINE, HANGUP, CALL, MUTE_MIC, CAMERA_OFF)

_IN_CALL = frozenset({HANGUP, MUTE_MIC, CAMERA_OFF})
# What means something in each call state: anything else is dropped here, so a stray key
# never reaches the call machine (which would only log and drop it).
ALLOWED: dict[str, frozenset[str]] = {
    "idle": frozenset({CALL}),
    "ringing": frozenset({ANSWER, DECLINE, HANGUP}),
    "calling": _IN_CALL,
    "connecting": _IN_CALL,
    "connected": _IN_CALL,
    "recovering": _IN_CALL,
    "ending": frozenset(),
}

# Enter and Space do the one obvious thing of each screen.
PRIMARY: dict[str, str] = {
    "idle": CALL,
    "ringing": ANSWER,
    "calling": HANGUP,
    "connecting": HANGUP,
    "connected": HANGUP,
    "recovering": HANGUP,
}

KEY_COMMANDS: dict[str, str] = {
    "a": ANSWER,
    "d": DECLINE,
    "h": HANGUP,
    "escape": HANGUP,
    "c": CALL,
    "m": MUTE_MIC,
    "v": CAMERA_OFF,
}
PRIMARY_KEYS = frozenset({"return", "enter", "space"})


@functools.cache
def _key_names() -> dict[int, str]:
    """pygame key codes -> the names above (not pygame.key.name: its names vary by SDL
    version)."""
    import pygame

    return {
        pygame.K_a: "a", pygame.K_d: "d", pygame.K_h: "h", pygame.K_c: "c", pygame.K_m: "m",
        pygame.K_v: "v", pygame.K_ESCAPE: "escape", pygame.K_RETURN: "return",
        pygame.K_KP_ENTER: "enter", pygame.K_SPACE: "space",
    }


@dataclass(frozen=True)
class Button:
    """An on-screen button: a rectangle (x, y, width, height) and the command it gives."""

    rect: tuple[int, int, int, int]
    command: str
    label: str = ""

    def contains(self, pos: tuple[float, float]) -> bool:
        x, y, width, height = self.rect
        return x <= pos[0] < x + width and y <= pos[1] < y + height

    @property
    def center(self) -> tuple[int, int]:
        x, y, width, height = self.rect
        return x + width // 2, y + height // 2


@dataclass(frozen=True)
class Input:
    """A user action: a key (by name), a pointer press at a screen position, or a physical
    button (GPIO) whose `key` is its command."""

    kind: str  # "key", "pointer" or "button"
    key: str = ""
    pos: tuple[float, float] = (0.0, 0.0)
    touch: bool = False


def allowed(command: str, state: str) -> bool:
    return command in ALLOWED.get(state, frozenset())


def command_for_key(key: str, state: str) -> str | None:
    """The command a key gives in `state`, or None (unmapped, or meaningless there)."""
    command = PRIMARY.get(state) if key in PRIMARY_KEYS else KEY_COMMANDS.get(key)
    if command is None or not allowed(command, state):
        return None
    return command


def hit(buttons: Iterable[Button], pos: tuple[float, float]) -> Button | None:
    """The button under `pos`, the last drawn (topmost) first."""
    for button in reversed(list(buttons)):
        if button.contains(pos):
            return button
    return None


def translate(event: Any, screen_size: tuple[int, int]) -> Input | None:
    """A pygame event as an Input, or None for events that are not user actions.

    SDL also reports a touch as a synthetic mouse event (with `touch` set); that copy is
    dropped so one tap is one press. Finger positions come normalised to 0..1.
    """
    import pygame

    if event.type == pygame.KEYDOWN:
        name = _key_names().get(event.key)
        return Input("key", key=name) if name else Input("key", key="")
    if event.type == pygame.MOUSEBUTTONDOWN:
        if getattr(event, "touch", False) or event.button != 1:
            return None
        return Input("pointer", pos=(float(event.pos[0]), float(event.pos[1])))
    if event.type == pygame.FINGERDOWN:
        width, height = screen_size
        return Input("pointer", pos=(event.x * width, event.y * height), touch=True)
    return None
