"""Painting: lay out and paint what presentation.py decided, onto a pygame Surface.

`draw(name, ctx)` asks `presentation.present` what the screen shows, then paints it and
returns what it drew: the on-screen buttons (for touch and mouse), named regions (for tests
and for placing overlays), and whether it animates (the render thread then redraws it at
ANIMATION_FPS, otherwise once a second for the clock and countdowns). It draws on any
Surface, so the unit tests paint off-screen with no display at all; only pygame.font must be
initialised.

Readable from two metres: sizes are fractions of the screen height (the clock is a quarter of
it, names an eighth).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # (imported by the render thread and the tests, not by the app)

from . import view as v
from .input import Button
from .presentation import (
    AMBER,
    BACKGROUND,
    FOREGROUND,
    GREEN,
    MUTED,
    PANEL,
    RED,
    Action,
    Colour,
    Presentation,
    present,
)

ANIMATION_FPS = 20
METER_OFF: Colour = (40, 40, 40)
CONTROLS_TOP = 0.82  # share of the height where the in-call buttons start

Rect = tuple[int, int, int, int]


class Theme:
    """Fonts and cached text surfaces for one screen size. Create after pygame.font.init()."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.width, self.height = size
        h = self.height
        self.huge = max(24, round(h * 0.24))  # the clock
        self.title = max(20, round(h * 0.12))  # names, headlines
        self.head = max(16, round(h * 0.085))  # button labels, countdown
        self.body = max(14, round(h * 0.062))
        self.small = max(12, round(h * 0.046))  # hints, admin instructions
        self.margin = round(min(self.width, h) * 0.04)
        self._fonts: dict[int, Any] = {}
        self._texts: dict[tuple[str, int, tuple[int, int, int]], Any] = {}
        self._panels: dict[tuple[int, int, int], Any] = {}

    def font(self, px: int) -> Any:
        font = self._fonts.get(px)
        if font is None:
            font = self._fonts[px] = pygame.font.Font(None, px)  # pygame's bundled sans
        return font

    def text(self, text: str, px: int, colour: Colour = FOREGROUND) -> Any:
        key = (text, px, colour)
        surface = self._texts.get(key)
        if surface is None:
            if len(self._texts) > 512:  # clocks and durations make new strings all day
                self._texts.clear()
            surface = self._texts[key] = self.font(px).render(text, True, colour)
        return surface

    def fit(self, text: str, px: int, max_width: int,
            colour: Colour = FOREGROUND) -> Any:
        """`text` at `px`, shrunk (down to about half) or cut with "..." to fit `max_width`."""
        size = px
        while self.font(size).size(text)[0] > max_width and size > px * 0.55:
            size = int(size * 0.9)
        if self.font(size).size(text)[0] > max_width:
            while len(text) > 1 and self.font(size).size(text + "...")[0] > max_width:
                text = text[:-1]
            text = text.rstrip() + "..."
        return self.text(text, size, colour)

    def wrap(self, text: str, px: int, max_width: int) -> list[str]:
        """`text` broken into lines no wider than `max_width` (a too-long word stays whole)."""
        lines: list[str] = []
        for paragraph in text.splitlines() or [""]:
            line = ""
            for word in paragraph.split():
                candidate = f"{line} {word}".strip()
                if line and self.font(px).size(candidate)[0] > max_width:
                    lines.append(line)
                    line = word
                else:
                    line = candidate
            lines.append(line)
        return lines

    def panel(self, width: int, height: int, alpha: int = 200) -> Any:
        """A translucent black rectangle, to keep overlay text readable on any picture."""
        key = (width, height, alpha)
        surface = self._panels.get(key)
        if surface is None:
            surface = pygame.Surface((width, height), pygame.SRCALPHA)
            surface.fill((0, 0, 0, alpha))
            self._panels[key] = surface
        return surface


@dataclass
class Ctx:
    """What a draw function needs. `now` is monotonic (countdowns), `wall` the clock's time."""

    surface: Any
    theme: Theme
    view: v.View
    now: float
    wall: float = field(default_factory=time.time)
    offline_for: float | None = None  # seconds the server has been unreachable
    level_dbfs: float | None = None  # audio calls: the caller's level
    controls: bool = True  # in-call buttons shown (they hide over the picture)
    video_rect: Rect | None = None  # in_call: where the remote picture is; None: none yet
    preview: Any = None  # in_call: the local camera, already scaled (and mirrored)
    preview_corner: str = "bottom-right"


@dataclass
class Drawn:
    """What a screen drew: its name, buttons (topmost last), named regions, animation."""

    name: str
    buttons: list[Button] = field(default_factory=list)
    regions: dict[str, Rect] = field(default_factory=dict)
    animated: bool = False


# -- helpers


def _blit_centred(ctx: Ctx, drawn: Drawn, name: str, text: Any, cx: float, cy: float) -> Rect:
    rect = text.get_rect(center=(round(cx), round(cy)))
    ctx.surface.blit(text, rect)
    drawn.regions[name] = (rect.x, rect.y, rect.width, rect.height)
    return drawn.regions[name]


def _say(ctx: Ctx, drawn: Drawn, shown: Presentation, name: str, px: int, cy: float,
         width_share: float = 0.9) -> None:
    """The text `shown` has for region `name` (if any), centred on the line at `cy`."""
    text = shown.texts.get(name)
    if text is not None:
        surface = ctx.theme.fit(text.text, px, round(ctx.theme.width * width_share),
                                text.colour)
        _blit_centred(ctx, drawn, name, surface, ctx.theme.width / 2, cy)


def _button(ctx: Ctx, drawn: Drawn, rect: Rect, action: Action) -> None:
    x, y, width, height = rect
    pygame.draw.rect(ctx.surface, action.colour, rect, border_radius=height // 4)
    text = ctx.theme.fit(action.label, ctx.theme.head, width - 2 * ctx.theme.margin // 2)
    ctx.surface.blit(text, text.get_rect(center=(x + width // 2, y + height // 2)))
    drawn.buttons.append(Button(rect, action.command, action.label))
    drawn.regions[f"button_{action.command}"] = rect


def _button_row(ctx: Ctx, drawn: Drawn, actions: tuple[Action, ...], top: float,
                height_share: float = 0.15, width_share: float = 0.3) -> None:
    """Buttons side by side, centred."""
    t = ctx.theme
    width, height = round(t.width * width_share), round(t.height * height_share)
    gap = t.margin
    total = len(actions) * width + (len(actions) - 1) * gap
    x = (t.width - total) // 2
    for action in actions:
        _button(ctx, drawn, (x, round(top), width, height), action)
        x += width + gap


def _top_bar(ctx: Ctx, drawn: Drawn, shown: Presentation) -> None:
    """Kiosk name on the left; the status word (with a dot) or the clock on the right."""
    t = ctx.theme
    name = t.fit(shown.texts["kiosk_name"].text, t.head, round(t.width * 0.55), FOREGROUND)
    ctx.surface.blit(name, (t.margin, t.margin))
    drawn.regions["kiosk_name"] = (t.margin, t.margin, name.get_width(), name.get_height())
    status = shown.texts["status"]
    text = t.text(status.text, t.body, status.colour)
    x = t.width - t.margin - text.get_width()
    y = t.margin + (name.get_height() - text.get_height()) // 2
    if shown.status_dot:
        radius = t.body // 4
        pygame.draw.circle(ctx.surface, status.colour,
                           (x - radius * 2, y + text.get_height() // 2), radius)
    ctx.surface.blit(text, (x, y))
    drawn.regions["status"] = (x, y, text.get_width(), text.get_height())


def _lines(ctx: Ctx, drawn: Drawn, name: str, lines: list[str], px: int, top: float,
           colour: Colour = FOREGROUND, left: int | None = None) -> float:
    """Lines of text from `top` down, centred (or from `left`); returns the next free y."""
    t = ctx.theme
    y = top
    regions = []
    for line in lines:
        text = t.fit(line, px, t.width - 2 * t.margin, colour)
        x = left if left is not None else (t.width - text.get_width()) // 2
        ctx.surface.blit(text, (x, round(y)))
        regions.append((x, round(y), text.get_width(), text.get_height()))
        y += text.get_height() * 1.25
    if regions:
        x0 = min(r[0] for r in regions)
        y0 = regions[0][1]
        x1 = max(r[0] + r[2] for r in regions)
        y1 = regions[-1][1] + regions[-1][3]
        drawn.regions[name] = (x0, y0, x1 - x0, y1 - y0)
    return y


def _avatar(ctx: Ctx, drawn: Drawn, shown: Presentation, cy: float, radius: int) -> None:
    """A filled circle with the name's initial; rings pulsing outwards when it rings."""
    assert shown.avatar is not None
    colour = shown.avatar.colour
    cx = ctx.theme.width // 2
    cy = round(cy)
    if shown.avatar.rings:
        period = 1.5
        for k in range(3):
            phase = ((ctx.now / period) + k / 3) % 1.0
            fade = 1.0 - phase
            ring = tuple(round(c * fade) for c in colour)
            pygame.draw.circle(ctx.surface, ring, (cx, cy), round(radius * (1 + 0.9 * phase)),
                               max(2, radius // 12))
    pygame.draw.circle(ctx.surface, colour, (cx, cy), radius)
    initial = (shown.avatar.name.strip()[:1] or "?").upper()
    _blit_centred(ctx, drawn, "avatar", ctx.theme.text(initial, round(radius * 1.3)), cx, cy)
    drawn.regions["avatar"] = (cx - radius, cy - radius, 2 * radius, 2 * radius)


def _pills(ctx: Ctx, drawn: Drawn, shown: Presentation, x: int, y: int) -> None:
    """The call's pills ("Mic off", then media warnings) from (x, y) rightwards."""
    t = ctx.theme
    pad = t.small // 3
    for pill in shown.pills:
        text = t.text(pill.label, t.small, pill.text_colour)
        rect = (x, y, text.get_width() + 2 * pad, text.get_height() + pad)
        pygame.draw.rect(ctx.surface, pill.colour, rect, border_radius=rect[3] // 3)
        ctx.surface.blit(text, (x + pad, y + pad // 2))
        drawn.regions[pill.name] = rect
        x += rect[2] + pad


def pip_rect(screen_size: tuple[int, int], picture_size: tuple[int, int], corner: str,
             controls: bool = False) -> Rect:
    """Where the local preview goes: a fifth of the screen wide, in `corner`, with a margin.

    In a bottom corner it moves up above the in-call buttons while they show (`controls`).
    """
    width_s, height_s = screen_size
    margin = round(min(width_s, height_s) * 0.04)
    width = round(width_s * 0.22) & ~1
    height = round(width * picture_size[1] / picture_size[0]) & ~1
    x = margin if corner.endswith("left") else width_s - margin - width
    y = margin if corner.startswith("top") else height_s - margin - height
    if controls and not corner.startswith("top"):
        y = min(y, round(height_s * CONTROLS_TOP) - margin - height)
    return x, y, width, height


# -- the screens ------------------------------------------------------------------------------


def draw_idle(ctx: Ctx, shown: Presentation) -> Drawn:
    t = ctx.theme
    drawn = Drawn(v.IDLE)
    ctx.surface.fill(BACKGROUND)
    _top_bar(ctx, drawn, shown)
    clock = shown.texts["clock"]
    _blit_centred(ctx, drawn, "clock", t.text(clock.text, t.huge, clock.colour),
                  t.width / 2, t.height * 0.38)
    _say(ctx, drawn, shown, "date", t.body, t.height * 0.55)
    if shown.buttons:  # the call button, and how to use it
        width = round(t.width * 0.6)
        _button(ctx, drawn, ((t.width - width) // 2, round(t.height * 0.66), width,
                             round(t.height * 0.17)), shown.buttons[0])
        _say(ctx, drawn, shown, "hint", t.small, t.height * 0.91)
    else:
        _say(ctx, drawn, shown, "hint", t.body, t.height * 0.76)
    return drawn


def draw_incoming(ctx: Ctx, shown: Presentation) -> Drawn:
    t = ctx.theme
    drawn = Drawn(v.INCOMING, animated=True)
    ctx.surface.fill(BACKGROUND)
    _say(ctx, drawn, shown, "caption", t.body, t.height * 0.08)
    _say(ctx, drawn, shown, "peer_name", t.title, t.height * 0.2)
    _avatar(ctx, drawn, shown, t.height * 0.47, round(t.height * 0.11))
    if "countdown" not in shown.texts:  # manual: the person decides
        _button_row(ctx, drawn, shown.buttons, top=t.height * 0.74, height_share=0.18,
                    width_share=0.36)
    else:
        _say(ctx, drawn, shown, "countdown", t.head, t.height * 0.76)
        _button_row(ctx, drawn, shown.buttons, top=t.height * 0.84, height_share=0.13,
                    width_share=0.3)
    return drawn


def draw_outgoing(ctx: Ctx, shown: Presentation) -> Drawn:
    """Calling and connecting: who, and three dots, one lit in turn: something is happening."""
    t = ctx.theme
    drawn = Drawn(shown.screen, animated=True)
    ctx.surface.fill(BACKGROUND)
    _say(ctx, drawn, shown, "caption", t.body, t.height * 0.1)
    _say(ctx, drawn, shown, "peer_name", t.title, t.height * 0.23)
    _avatar(ctx, drawn, shown, t.height * 0.47, round(t.height * 0.1))
    lit = int(ctx.now * 3) % 3
    radius, y = max(3, t.height // 60), round(t.height * 0.66)
    for i in range(3):
        x = round(t.width / 2 + (i - 1) * radius * 4)
        pygame.draw.circle(ctx.surface, FOREGROUND if i == lit else PANEL, (x, y), radius)
    drawn.regions["dots"] = (round(t.width / 2) - 5 * radius, y - radius, 10 * radius,
                             2 * radius)
    _button_row(ctx, drawn, shown.buttons, top=t.height * 0.76, height_share=0.16,
                width_share=0.34)
    return drawn


def _status_pill(ctx: Ctx, drawn: Drawn, shown: Presentation) -> None:
    """Name and duration on a dark panel with a red dot: top-left, or top-right when the
    preview is top-left; the call's pills under it."""
    t = ctx.theme
    text = t.fit(shown.texts["status"].text, t.body, round(t.width * 0.4))
    pad = t.body // 4
    width, height = text.get_width() + 3 * pad + t.body // 2, text.get_height() + 2 * pad
    x = t.margin if ctx.preview_corner != "top-left" else t.width - t.margin - width
    y = t.margin
    ctx.surface.blit(t.panel(width, height), (x, y))
    pygame.draw.circle(ctx.surface, RED, (x + pad + t.body // 4, y + height // 2), t.body // 5)
    ctx.surface.blit(text, (x + 2 * pad + t.body // 2, y + pad))
    drawn.regions["status"] = (x, y, width, height)
    _pills(ctx, drawn, shown, x, y + height + pad)


def _preview(ctx: Ctx, drawn: Drawn, shown: Presentation) -> None:
    """The local camera in its corner, or a "Camera off" panel there."""
    t = ctx.theme
    label = shown.texts.get("pip_label")  # the camera is off
    if ctx.preview is None and label is None:
        return
    size = ctx.preview.get_size() if ctx.preview is not None else (16, 9)
    rect = pip_rect((t.width, t.height), size, ctx.preview_corner, ctx.controls)
    if label is None:
        ctx.surface.blit(ctx.preview, rect[:2])
    else:
        pygame.draw.rect(ctx.surface, PANEL, rect)
        _blit_centred(ctx, drawn, "pip_label", t.text(label.text, t.small, label.colour),
                      rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
    border = max(2, t.height // 240)
    pygame.draw.rect(ctx.surface, FOREGROUND,
                     (rect[0] - border, rect[1] - border, rect[2] + 2 * border,
                      rect[3] + 2 * border), border)
    drawn.regions["pip"] = rect


def draw_in_call(ctx: Ctx, shown: Presentation) -> Drawn:
    """The overlays of a video call; the render thread has already drawn the picture (or not).

    The status and pills at the top; the local preview in its corner; the buttons along the
    bottom when `ctx.controls`.
    """
    t = ctx.theme
    drawn = Drawn(v.IN_CALL)
    if ctx.video_rect is None:
        ctx.surface.fill(BACKGROUND)
        _say(ctx, drawn, shown, "waiting", t.head, t.height * 0.4)
        _say(ctx, drawn, shown, "waiting_hint", t.body, t.height * 0.52)
    else:
        drawn.regions["video"] = ctx.video_rect
    _status_pill(ctx, drawn, shown)
    _preview(ctx, drawn, shown)
    if ctx.controls:
        _button_row(ctx, drawn, shown.buttons, top=t.height * CONTROLS_TOP, height_share=0.13,
                    width_share=0.24)
    return drawn


def _meter(ctx: Ctx, drawn: Drawn) -> None:
    """The level meter: segments light up from the left with the caller's voice."""
    t = ctx.theme
    segments = 24
    left, right = round(t.width * 0.12), round(t.width * 0.88)
    top, height = round(t.height * 0.47), round(t.height * 0.1)
    gap = max(2, (right - left) // (segments * 8))
    seg_width = (right - left - (segments - 1) * gap) / segments
    level = ctx.level_dbfs if ctx.level_dbfs is not None else ctx.view.audio_level_dbfs
    lit = round(v.level_fraction(level) * segments)
    for i in range(segments):
        colour = METER_OFF
        if i < lit:
            colour = GREEN if i < segments * 0.7 else AMBER if i < segments * 0.9 else RED
        x = round(left + i * (seg_width + gap))
        pygame.draw.rect(ctx.surface, colour, (x, top, round(seg_width), height))
    drawn.regions["meter"] = (left, top, right - left, height)
    drawn.regions["meter_lit"] = (left, top, round(lit * (seg_width + gap)), height)


def draw_audio_call(ctx: Ctx, shown: Presentation) -> Drawn:
    t = ctx.theme
    drawn = Drawn(v.AUDIO_CALL, animated=True)
    ctx.surface.fill(BACKGROUND)
    _say(ctx, drawn, shown, "caption", t.body, t.height * 0.08)
    _say(ctx, drawn, shown, "peer_name", t.title, t.height * 0.21)
    _say(ctx, drawn, shown, "duration", t.head, t.height * 0.35)
    _meter(ctx, drawn)
    _pills(ctx, drawn, shown, t.margin, t.margin)
    _button_row(ctx, drawn, shown.buttons, top=t.height * 0.75, height_share=0.16,
                width_share=0.24)
    return drawn


def draw_outcome(ctx: Ctx, shown: Presentation) -> Drawn:
    t = ctx.theme
    drawn = Drawn(v.OUTCOME)
    ctx.surface.fill(BACKGROUND)
    _say(ctx, drawn, shown, "title", t.title, t.height * 0.4)
    _say(ctx, drawn, shown, "peer_name", t.head, t.height * 0.57)
    return drawn


def draw_admin(ctx: Ctx, shown: Presentation) -> Drawn:
    """Offline and error: the top bar, the title, the problem and what to do about it."""
    t = ctx.theme
    drawn = Drawn(shown.screen)
    ctx.surface.fill(BACKGROUND)
    _top_bar(ctx, drawn, shown)
    _say(ctx, drawn, shown, "title", t.title, t.height * 0.24)
    width = t.width - 2 * t.margin
    problem = [line for part in shown.problem for line in t.wrap(part, t.body, width)]
    y = _lines(ctx, drawn, "problem", problem[:shown.problem_lines], t.body, t.height * 0.34)
    if shown.steps:
        _lines(ctx, drawn, "steps", list(shown.steps), t.small, y + t.small * 0.6, MUTED,
               left=round(t.width * 0.1))
    return drawn


def draw_blank(ctx: Ctx, shown: Presentation) -> Drawn:
    ctx.surface.fill(BACKGROUND)
    return Drawn(v.BLANK)


DRAW: dict[str, Callable[[Ctx, Presentation], Drawn]] = {
    v.IDLE: draw_idle,
    v.INCOMING: draw_incoming,
    v.CALLING: draw_outgoing,
    v.CONNECTING: draw_outgoing,
    v.IN_CALL: draw_in_call,
    v.AUDIO_CALL: draw_audio_call,
    v.OUTCOME: draw_outcome,
    v.OFFLINE: draw_admin,
    v.ERROR: draw_admin,
    v.BLANK: draw_blank,
}
assert set(DRAW) == set(v.SCREENS)


def draw(name: str, ctx: Ctx) -> Drawn:
    """Paint the screen `name` for `ctx.view` and say what was drawn."""
    shown = present(name, ctx.view, ctx.now, ctx.wall, ctx.offline_for)
    return DRAW[name](ctx, shown)


def seconds_to_next_redraw(drawn: Drawn, now_wall: float) -> float:
    """How long a drawn screen stays right: a frame at ANIMATION_FPS, else to the next second."""
    if drawn.animated:
        return 1.0 / ANIMATION_FPS
    return max(0.01, 1.0 - (now_wall % 1.0))
