"""One draw function per screen: paint a `View` onto a pygame Surface.

Each function takes a `Ctx` (the surface, the theme, the view, the time) and returns what it
drew: the on-screen buttons (for touch and mouse), named regions (for tests and for placing
overlays), and whether it animates (the render thread then redraws it at ANIMATION_FPS,
otherwise once a second for the clock and countdowns). They draw on any Surface, so the unit
tests render them off-screen with no display at all; only pygame.font must be initialised.

Readable from two metres: sizes are fractions of the screen height (the clock is a quarter of
it, names an eighth), white or saturated colours on black, and nothing on screen that the
person in front of it does not need.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (imported by the render thread and the tests, not by the app)

from . import view as v  # noqa: E402
from .input import ANSWER, CALL, CAMERA_OFF, DECLINE, HANGUP, MUTE_MIC, Button  # noqa: E402

ANIMATION_FPS = 20

BACKGROUND = (0, 0, 0)
FOREGROUND = (255, 255, 255)
MUTED = (185, 185, 185)
GREEN = (16, 150, 56)
RED = (200, 30, 30)
AMBER = (255, 176, 0)
PANEL = (48, 48, 48)
METER_OFF = (40, 40, 40)

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
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

    def text(self, text: str, px: int, colour: tuple[int, int, int] = FOREGROUND) -> Any:
        key = (text, px, colour)
        surface = self._texts.get(key)
        if surface is None:
            if len(self._texts) > 512:  # clocks and durations make new strings all day
                self._texts.clear()
            surface = self._texts[key] = self.font(px).render(text, True, colour)
        return surface

    def fit(self, text: str, px: int, max_width: int,
            colour: tuple[int, int, int] = FOREGROUND) -> Any:
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


# -- helpers ----------------------------------------------------------------------------------


def _rect(surface: Any) -> Rect:
    r = surface.get_rect()
    return (r.x, r.y, r.width, r.height)


def _blit_centred(ctx: Ctx, drawn: Drawn, name: str, text: Any, cx: float, cy: float) -> Rect:
    rect = text.get_rect(center=(round(cx), round(cy)))
    ctx.surface.blit(text, rect)
    drawn.regions[name] = (rect.x, rect.y, rect.width, rect.height)
    return drawn.regions[name]


def _centred(ctx: Ctx, drawn: Drawn, name: str, text: str, px: int, cy: float,
             colour: tuple[int, int, int] = FOREGROUND, width_share: float = 0.9) -> Rect:
    surface = ctx.theme.fit(text, px, round(ctx.theme.width * width_share), colour)
    return _blit_centred(ctx, drawn, name, surface, ctx.theme.width / 2, cy)


def _button(ctx: Ctx, drawn: Drawn, rect: Rect, label: str, colour: tuple[int, int, int],
            command: str, px: int | None = None) -> Button:
    x, y, width, height = rect
    pygame.draw.rect(ctx.surface, colour, rect, border_radius=height // 4)
    text = ctx.theme.fit(label, px or ctx.theme.head, width - 2 * ctx.theme.margin // 2)
    ctx.surface.blit(text, text.get_rect(center=(x + width // 2, y + height // 2)))
    button = Button(rect, command, label)
    drawn.buttons.append(button)
    drawn.regions[f"button_{command}"] = rect
    return button


def _button_row(ctx: Ctx, drawn: Drawn, specs: list[tuple[str, tuple[int, int, int], str]],
                top: float, height_share: float = 0.15, width_share: float = 0.3) -> None:
    """Buttons side by side, centred: specs are (label, colour, command)."""
    t = ctx.theme
    width, height = round(t.width * width_share), round(t.height * height_share)
    gap = t.margin
    total = len(specs) * width + (len(specs) - 1) * gap
    x = (t.width - total) // 2
    for label, colour, command in specs:
        _button(ctx, drawn, (x, round(top), width, height), label, colour, command)
        x += width + gap


def _top_bar(ctx: Ctx, drawn: Drawn, status: tuple[str, tuple[int, int, int]] | None) -> None:
    """Kiosk name on the left; a status dot and word (or the clock) on the right."""
    t = ctx.theme
    name = t.fit(ctx.view.kiosk_name or "Kiosk", t.head, round(t.width * 0.55), FOREGROUND)
    ctx.surface.blit(name, (t.margin, t.margin))
    drawn.regions["kiosk_name"] = (t.margin, t.margin, name.get_width(), name.get_height())
    if status is None:
        label, colour = time.strftime("%H:%M", time.localtime(ctx.wall)), MUTED
    else:
        label, colour = status
    text = t.text(label, t.body, colour)
    x = t.width - t.margin - text.get_width()
    y = t.margin + (name.get_height() - text.get_height()) // 2
    if status is not None:
        radius = t.body // 4
        pygame.draw.circle(ctx.surface, colour, (x - radius * 2, y + text.get_height() // 2),
                           radius)
    ctx.surface.blit(text, (x, y))
    drawn.regions["status"] = (x, y, text.get_width(), text.get_height())


def _lines(ctx: Ctx, drawn: Drawn, name: str, lines: list[str], px: int, top: float,
           colour: tuple[int, int, int] = FOREGROUND, left: int | None = None) -> float:
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


def _avatar(ctx: Ctx, drawn: Drawn, name: str, cy: float, radius: int,
            colour: tuple[int, int, int], rings: bool) -> None:
    """A filled circle with the name's initial; optional rings pulsing outwards (ringing)."""
    cx = ctx.theme.width // 2
    cy = round(cy)
    if rings:
        period = 1.5
        for k in range(3):
            phase = ((ctx.now / period) + k / 3) % 1.0
            fade = 1.0 - phase
            ring = tuple(round(c * fade) for c in colour)
            pygame.draw.circle(ctx.surface, ring, (cx, cy), round(radius * (1 + 0.9 * phase)),
                               max(2, radius // 12))
    pygame.draw.circle(ctx.surface, colour, (cx, cy), radius)
    initial = (name.strip()[:1] or "?").upper()
    _blit_centred(ctx, drawn, "avatar", ctx.theme.text(initial, round(radius * 1.3)), cx, cy)
    drawn.regions["avatar"] = (cx - radius, cy - radius, 2 * radius, 2 * radius)


def _peer(view: v.View) -> str:
    return view.peer_name or "Unknown caller"


# -- the screens ------------------------------------------------------------------------------


def draw_idle(ctx: Ctx) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.IDLE)
    ctx.surface.fill(BACKGROUND)
    if view.online:
        status = ("Online", GREEN)
    else:
        status = ("Connecting...", AMBER)
    _top_bar(ctx, drawn, status)
    local = time.localtime(ctx.wall)
    _blit_centred(ctx, drawn, "clock", t.text(time.strftime("%H:%M", local), t.huge),
                  t.width / 2, t.height * 0.38)
    _centred(ctx, drawn, "date", time.strftime("%A %d %B", local), t.body, t.height * 0.55,
             MUTED)
    if view.contact_name:
        width = round(t.width * 0.6)
        _button(ctx, drawn, ((t.width - width) // 2, round(t.height * 0.66), width,
                             round(t.height * 0.17)), f"Call {view.contact_name}", GREEN, CALL)
        _centred(ctx, drawn, "hint", "Touch the button or press C", t.small, t.height * 0.91,
                 MUTED)
    else:
        _centred(ctx, drawn, "hint", "Ready for calls", t.body, t.height * 0.76, MUTED)
    return drawn


def draw_incoming(ctx: Ctx) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.INCOMING, animated=True)
    ctx.surface.fill(BACKGROUND)
    kind = "video" if view.call_type == "video" else "audio"
    _centred(ctx, drawn, "caption", f"Incoming {kind} call", t.body, t.height * 0.08, MUTED)
    _centred(ctx, drawn, "peer_name", _peer(view), t.title, t.height * 0.2)
    _avatar(ctx, drawn, _peer(view), t.height * 0.47, round(t.height * 0.11), GREEN, rings=True)
    seconds = v.countdown(view, ctx.now)
    if seconds is None:  # manual: the person decides
        _button_row(ctx, drawn, [("Answer", GREEN, ANSWER), ("Decline", RED, DECLINE)],
                    top=t.height * 0.74, height_share=0.18, width_share=0.36)
    else:
        _centred(ctx, drawn, "countdown", f"Answering in {seconds}", t.head, t.height * 0.76)
        _button_row(ctx, drawn, [("Decline", RED, DECLINE)], top=t.height * 0.84,
                    height_share=0.13, width_share=0.3)
    return drawn


def _outgoing(ctx: Ctx, name: str, caption: str) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(name, animated=True)
    ctx.surface.fill(BACKGROUND)
    _centred(ctx, drawn, "caption", caption, t.body, t.height * 0.1, MUTED)
    if view.peer_name:
        _centred(ctx, drawn, "peer_name", view.peer_name, t.title, t.height * 0.23)
    _avatar(ctx, drawn, _peer(view), t.height * 0.47, round(t.height * 0.1), PANEL,
            rings=name == v.CALLING)
    # Three dots, one lit in turn: something is happening.
    lit = int(ctx.now * 3) % 3
    radius, y = max(3, t.height // 60), round(t.height * 0.66)
    for i in range(3):
        x = round(t.width / 2 + (i - 1) * radius * 4)
        pygame.draw.circle(ctx.surface, FOREGROUND if i == lit else PANEL, (x, y), radius)
    drawn.regions["dots"] = (round(t.width / 2) - 5 * radius, y - radius, 10 * radius,
                             2 * radius)
    _button_row(ctx, drawn, [("Hang up", RED, HANGUP)], top=t.height * 0.76,
                height_share=0.16, width_share=0.34)
    return drawn


def draw_calling(ctx: Ctx) -> Drawn:
    return _outgoing(ctx, v.CALLING, "Calling")


def draw_connecting(ctx: Ctx) -> Drawn:
    return _outgoing(ctx, v.CONNECTING, "Connecting")


def _indicator_pills(ctx: Ctx, drawn: Drawn, x: int, y: int) -> None:
    """Red "Mic off" / "Camera off" pills from (x, y) rightwards, then an amber one for each
    media warning ("No microphone", "Camera lost"): the call goes on without it."""
    t, view = ctx.theme, ctx.view
    pills = [(label, RED, FOREGROUND, name) for label, on, name in (
        ("Mic off", view.mic_muted, "mic_off"), ("Camera off", view.camera_off, "camera_off"))
        if on]
    pills += [(label, AMBER, BACKGROUND, f"media_warning_{i}")
              for i, label in enumerate(view.media_warnings)]
    pad = t.small // 3
    for label, colour, text_colour, name in pills:
        text = t.text(label, t.small, text_colour)
        rect = (x, y, text.get_width() + 2 * pad, text.get_height() + pad)
        pygame.draw.rect(ctx.surface, colour, rect, border_radius=rect[3] // 3)
        ctx.surface.blit(text, (x + pad, y + pad // 2))
        drawn.regions[name] = rect
        x += rect[2] + pad


CONTROLS_TOP = 0.82  # share of the height where the in-call buttons start


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


def draw_in_call(ctx: Ctx) -> Drawn:
    """The overlays of a video call; the render thread has already drawn the picture (or not).

    Status (name and duration) top-left, or top-right when the preview is top-left;
    the local preview in its corner; the buttons along the bottom when `ctx.controls`.
    """
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.IN_CALL)
    if ctx.video_rect is None:
        ctx.surface.fill(BACKGROUND)
        _centred(ctx, drawn, "waiting", f"Connected to {_peer(view)}", t.head, t.height * 0.4)
        _centred(ctx, drawn, "waiting_hint", "Waiting for video...", t.body, t.height * 0.52,
                 MUTED)
    else:
        drawn.regions["video"] = ctx.video_rect
    # Status pill
    label = _peer(view)
    if view.connected_since is not None:
        label += "  " + v.format_duration(ctx.now - view.connected_since)
    text = t.fit(label, t.body, round(t.width * 0.4))
    pad = t.body // 4
    width, height = text.get_width() + 3 * pad + t.body // 2, text.get_height() + 2 * pad
    x = t.margin if ctx.preview_corner != "top-left" else t.width - t.margin - width
    y = t.margin
    ctx.surface.blit(t.panel(width, height), (x, y))
    pygame.draw.circle(ctx.surface, RED, (x + pad + t.body // 4, y + height // 2), t.body // 5)
    ctx.surface.blit(text, (x + 2 * pad + t.body // 2, y + pad))
    drawn.regions["status"] = (x, y, width, height)
    _indicator_pills(ctx, drawn, x, y + height + pad)
    # Local preview
    if ctx.preview is not None or view.camera_off:
        size = ctx.preview.get_size() if ctx.preview is not None else (16, 9)
        rect = pip_rect((t.width, t.height), size, ctx.preview_corner, ctx.controls)
        if ctx.preview is not None and not view.camera_off:
            ctx.surface.blit(ctx.preview, rect[:2])
        else:
            pygame.draw.rect(ctx.surface, PANEL, rect)
            _blit_centred(ctx, drawn, "pip_label", t.text("Camera off", t.small, MUTED),
                          rect[0] + rect[2] / 2, rect[1] + rect[3] / 2)
        border = max(2, t.height // 240)
        pygame.draw.rect(ctx.surface, FOREGROUND,
                         (rect[0] - border, rect[1] - border, rect[2] + 2 * border,
                          rect[3] + 2 * border), border)
        drawn.regions["pip"] = rect
    if ctx.controls:
        _call_buttons(ctx, drawn, top=t.height * CONTROLS_TOP, height_share=0.13)
    return drawn


def _call_buttons(ctx: Ctx, drawn: Drawn, top: float, height_share: float,
                  camera: bool = True) -> None:
    view = ctx.view
    specs = [("Unmute" if view.mic_muted else "Mute", AMBER if view.mic_muted else PANEL,
              MUTE_MIC)]
    if camera:
        specs.append(("Camera on" if view.camera_off else "Camera off",
                      AMBER if view.camera_off else PANEL, CAMERA_OFF))
    specs.append(("Hang up", RED, HANGUP))
    _button_row(ctx, drawn, specs, top=top, height_share=height_share, width_share=0.24)


def draw_audio_call(ctx: Ctx) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.AUDIO_CALL, animated=True)
    ctx.surface.fill(BACKGROUND)
    _centred(ctx, drawn, "caption", "Audio call", t.body, t.height * 0.08, MUTED)
    _centred(ctx, drawn, "peer_name", _peer(view), t.title, t.height * 0.21)
    if view.connected_since is not None:
        _centred(ctx, drawn, "duration", v.format_duration(ctx.now - view.connected_since),
                 t.head, t.height * 0.35)
    # The level meter: segments light up from the left with the caller's voice.
    segments = 24
    left, right = round(t.width * 0.12), round(t.width * 0.88)
    top, height = round(t.height * 0.47), round(t.height * 0.1)
    gap = max(2, (right - left) // (segments * 8))
    seg_width = (right - left - (segments - 1) * gap) / segments
    level = ctx.level_dbfs if ctx.level_dbfs is not None else view.audio_level_dbfs
    lit = round(v.level_fraction(level) * segments)
    for i in range(segments):
        colour = METER_OFF
        if i < lit:
            colour = GREEN if i < segments * 0.7 else AMBER if i < segments * 0.9 else RED
        x = round(left + i * (seg_width + gap))
        pygame.draw.rect(ctx.surface, colour, (x, top, round(seg_width), height))
    drawn.regions["meter"] = (left, top, right - left, height)
    drawn.regions["meter_lit"] = (left, top, round(lit * (seg_width + gap)), height)
    _indicator_pills(ctx, drawn, t.margin, t.margin)
    _call_buttons(ctx, drawn, top=t.height * 0.75, height_share=0.16, camera=False)
    return drawn


def draw_outcome(ctx: Ctx) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.OUTCOME)
    ctx.surface.fill(BACKGROUND)
    outcome = view.last_outcome or "answered"
    colour = {"missed": AMBER, "answered": FOREGROUND, "cancelled": FOREGROUND}.get(outcome, RED)
    title = v.outcome_title(view)
    _centred(ctx, drawn, "title", title, t.title, t.height * 0.4, colour)
    if view.peer_name and view.peer_name not in title:
        prefix = "from" if view.direction == "incoming" else "with"
        _centred(ctx, drawn, "peer_name", f"{prefix} {view.peer_name}", t.head,
                 t.height * 0.57, MUTED)
    return drawn


def _admin_screen(ctx: Ctx, drawn: Drawn, title: str, colour: tuple[int, int, int],
                  problem: list[str], steps: list[str]) -> Drawn:
    t = ctx.theme
    ctx.surface.fill(BACKGROUND)
    _top_bar(ctx, drawn, None)
    _centred(ctx, drawn, "title", title, t.title, t.height * 0.24, colour)
    y = _lines(ctx, drawn, "problem", problem, t.body, t.height * 0.34)
    if steps:
        lines = ["What to do:"] + steps
        _lines(ctx, drawn, "steps", lines, t.small, y + t.small * 0.6, MUTED,
               left=round(t.width * 0.1))
    return drawn


def draw_offline(ctx: Ctx) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.OFFLINE)
    problem = ["Cannot reach the call server."]
    if view.signaling_url:
        problem.append(view.signaling_url)
    if ctx.offline_for is not None and ctx.offline_for >= 60:
        problem.append(f"Offline for {int(ctx.offline_for // 60)} min; retrying.")
    else:
        problem.append("Calls cannot come in. Retrying automatically.")
    steps = ["1. Check the network cable or Wi-Fi of this kiosk.",
             "2. Check that the server is running and signaling.url is right.",
             "3. On the kiosk: kioskctl status; journalctl -u kioskd"]
    problem = [line for part in problem for line in t.wrap(part, t.body, t.width - 2 * t.margin)]
    return _admin_screen(ctx, drawn, "Offline", AMBER, problem, steps)


def draw_error(ctx: Ctx) -> Drawn:
    t, view = ctx.theme, ctx.view
    drawn = Drawn(v.ERROR)
    width = t.width - 2 * t.margin
    if view.signaling_status == "unauthorized":
        problem = t.wrap("The call server refused this kiosk's token.", t.body, width)
        steps = ["1. Copy this kiosk's token from the server's tokens file.",
                 "2. Put it in the file named by signaling.token_file.",
                 "3. Restart: sudo systemctl restart kioskd"]
        return _admin_screen(ctx, drawn, "Not authorized", RED, problem, steps)
    problem = t.wrap(view.error or "Unknown problem", t.body, width)
    return _admin_screen(ctx, drawn, "Needs attention", AMBER, problem[:6],
                         ["See: journalctl -u kioskd"])


def draw_blank(ctx: Ctx) -> Drawn:
    ctx.surface.fill(BACKGROUND)
    return Drawn(v.BLANK)


DRAW: dict[str, Callable[[Ctx], Drawn]] = {
    v.IDLE: draw_idle,
    v.INCOMING: draw_incoming,
    v.CALLING: draw_calling,
    v.CONNECTING: draw_connecting,
    v.IN_CALL: draw_in_call,
    v.AUDIO_CALL: draw_audio_call,
    v.OUTCOME: draw_outcome,
    v.OFFLINE: draw_offline,
    v.ERROR: draw_error,
    v.BLANK: draw_blank,
}
assert set(DRAW) == set(v.SCREENS)


def draw(name: str, ctx: Ctx) -> Drawn:
    return DRAW[name](ctx)


def seconds_to_next_redraw(drawn: Drawn, now_wall: float) -> float:
    """How long a drawn screen stays right: a frame at ANIMATION_FPS, else to the next second."""
    if drawn.animated:
        return 1.0 / ANIMATION_FPS
    return max(0.01, 1.0 - (now_wall % 1.0))
