"""The renderer: what to draw, and when, on the render thread.

Each pass takes what the slots handed over and draws only when something is due: a new View
or an input, a remote frame, a preview frame no remote frame will carry, a new screen, or the
screen's own clock (its animation, the clock, a countdown, the in-call buttons hiding). The
thread sleeps in between, until the next redraw is due or something is handed over: it never
spins between frames.

The remote picture is painted first (video.py converts it once); the overlays (name and
duration, mute pills, the preview, the buttons) are drawn on top and the whole screen is
flipped once per frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import av

from . import view as v
from .interaction import EVENT_POLL, Interaction
from .slots import Handed
from .stats import ScreenStats
from .video import PreviewVideo, RemoteVideo, direct_video_ok
from .view import View

PREVIEW_FRESH_S = 1.0  # an older preview frame is not shown when a call starts
PREVIEW_FPS = 15  # the picture-in-picture is small: half the camera's rate is enough
VIDEO_FLOWING_S = 0.1  # remote frames closer than this carry the preview's updates
LEVEL_FRESH_S = 1.0  # a pushed audio level older than this gives way to the View's


@dataclass
class _RenderState:
    """The frame scheduling's own, fresh for each run of the display thread."""

    offline_since: float | None  # None: online
    next_redraw: float = 0.0  # draw at once
    remote: av.VideoFrame | None = None  # the newest remote frame not yet drawn
    remote_drawn_at: float = 0.0
    preview: av.VideoFrame | None = None  # the newest preview frame not yet drawn
    preview_at: float = 0.0
    preview_shown_at: float = 0.0
    preview_surface: Any = None  # the preview, scaled and mirrored


class Renderer:
    """Draws the newest View, remote picture and preview on the display's surface.

    `open` (on the render thread, with pygame and the surface), then `run_pass` on every
    wake-up and `sleep_for` between them; `close` when the thread ends.
    """

    def __init__(self, interaction: Interaction, statistics: ScreenStats, *, preview: bool,
                 preview_corner: str, mirror_preview: bool) -> None:
        self.interaction = interaction
        self.statistics = statistics
        self.preview_on = preview
        self.preview_corner = preview_corner
        self.view = View()  # the newest View taken from the slots
        self.current_screen: str | None = None  # the screen on the display
        self.layout: Any = None  # its painting.Drawn: buttons and named regions
        self._state = _RenderState(offline_since=None)
        self._pygame: Any = None
        self._surface: Any = None
        self._painting: Any = None
        self._theme: Any = None
        self._video = RemoteVideo(direct=False)  # open() makes it for the display's pixels
        self._preview_video = PreviewVideo(mirror_preview)

    def open(self, pygame: Any, surface: Any) -> None:
        from . import painting

        now = time.monotonic()
        self._pygame, self._surface, self._painting = pygame, surface, painting
        self._theme = painting.Theme(surface.get_size())
        self._video = RemoteVideo(direct_video_ok(surface))
        self.statistics.video_path = "direct" if self._video.direct else "blit"
        self._state = _RenderState(offline_since=now)  # nothing says we are online yet
        self.interaction.open(pygame, now)

    def close(self) -> None:
        self.interaction.light()

    def sleep_for(self) -> float:
        """Seconds the thread may sleep: until the next redraw, and input is read at least
        every EVENT_POLL."""
        return min(EVENT_POLL, max(0.0, self._state.next_redraw - time.monotonic()))

    def retry_later(self) -> None:
        """After a failed pass: not at once, and not never."""
        self._state.next_redraw = time.monotonic() + EVENT_POLL

    def run_pass(self, handed: Handed) -> None:
        """One wake-up: take what was handed over, and draw if anything is due."""
        self.statistics.render_passes += 1
        now = time.monotonic()
        changed = self._take(handed, now)
        name = v.BLANK if self.interaction.blanked else v.screen_for(
            self.view, now, self._state.offline_since)
        in_video = name == v.IN_CALL
        if self._due(name, in_video, changed, now):
            self._draw(name, in_video, handed.audio_level, now)

    def _take(self, handed: Handed, now: float) -> bool:
        changed = False
        if handed.view is not None:
            self._take_view(handed.view, now)
            changed = True  # a View handed over is always drawn
        changed |= self.interaction.take_input(self._surface.get_size(), now, handed.presses)
        changed |= self.interaction.sleep_if_idle(now)
        state = self._state
        if handed.preview is not None:
            self.statistics.preview_frames += 1
            state.preview, state.preview_at = handed.preview, now
        if handed.remote is not None:
            state.remote = handed.remote
        return changed

    def _take_view(self, view: View, now: float) -> None:
        old, self.view = self.view, view
        self.interaction.on_view(old, view, now)
        state = self._state
        in_call = ("connecting", "connected", "recovering")
        if view.state != old.state and view.state not in in_call:
            state.remote = None  # the next call must not flash this one's last picture
            self._video.clear()
            self.statistics.call_first_rendered_at = None
        if view.online:
            state.offline_since = None
        elif state.offline_since is None:
            state.offline_since = now

    def _due(self, name: str, in_video: bool, changed: bool, now: float) -> bool:
        state = self._state
        if not in_video:
            state.preview_surface = None  # the next call starts with a fresh preview
        elif (state.preview is not None and now - state.remote_drawn_at > VIDEO_FLOWING_S
              and now - state.preview_shown_at >= 1 / PREVIEW_FPS):
            # No remote picture is coming to carry the new preview: draw it by itself.
            # (While the caller's video flows, the preview waits for its next frame, so
            # two unsynchronised 30 fps streams make 30 flips a second, not 60.)
            changed = True
        new_frame = in_video and state.remote is not None
        # While the caller's video flows, its frames redraw the duration and buttons too.
        flowing = in_video and now - state.remote_drawn_at <= VIDEO_FLOWING_S
        ticking = now >= state.next_redraw and not flowing
        if changed or new_frame or name != self.current_screen or ticking:
            return True
        if flowing and now >= state.next_redraw:
            # The next frame redraws the clock; tick by ourselves only if none comes.
            # (Left in the past, next_redraw would make the thread spin between frames.)
            state.next_redraw = state.remote_drawn_at + VIDEO_FLOWING_S
        return False

    def _draw(self, name: str, in_video: bool, level: tuple[float | None, float],
              now: float) -> None:
        started = time.perf_counter()
        state, wall = self._state, time.time()
        ctx = self._painting.Ctx(
            self._surface, self._theme, self.view, now, wall,
            offline_for=None if state.offline_since is None else now - state.offline_since,
            level_dbfs=self._level(level, now), controls=self.interaction.controls_shown(now),
            preview_corner=self.preview_corner)
        shown, converted = self._paint_video(ctx, now) if in_video else (None, 0.0)
        drawn = self._painting.draw(name, ctx)
        before_flip = time.perf_counter()
        self._pygame.display.flip()
        done = time.perf_counter()
        if shown is not None:
            self.statistics.note_screen_latency(shown)
        self.layout, self.current_screen = drawn, name
        self.statistics.note_screen(name)
        self.interaction.shown(name, drawn.buttons)
        if converted:
            self.statistics.note_frame(started, converted, before_flip, done)
        next_in = self._painting.seconds_to_next_redraw(drawn, wall)
        if in_video and self.interaction.controls_shown(now):
            next_in = min(next_in, self.interaction.controls_until - now + 0.01)
        state.next_redraw = now + next_in

    def _paint_video(self, ctx: Any, now: float) -> tuple[av.VideoFrame | None, float]:
        """Convert the new remote frame (and a due preview frame) and paint the picture.
        Returns the remote frame shown, if any, and the perf_counter() after converting it."""
        state, size = self._state, self._surface.get_size()
        shown, converted = None, 0.0
        if state.remote is not None:
            shown, state.remote = state.remote, None
            self._video.convert(self._pygame, shown, size)
            state.remote_drawn_at = now
            converted = time.perf_counter()
        if state.preview is not None and (now - state.preview_shown_at >= 1 / PREVIEW_FPS
                                          or state.preview_surface is None):
            frame, state.preview = state.preview, None
            if now - state.preview_at < PREVIEW_FRESH_S:
                _, _, width, height = self._painting.pip_rect(
                    size, (frame.width, frame.height), self.preview_corner)
                state.preview_surface = self._preview_video.convert(
                    self._pygame, frame, width, height)
                state.preview_shown_at = now
        if self._video.rect is not None:
            self._video.paint(self._pygame, self._surface)
            ctx.video_rect = self._video.rect
        ctx.preview = state.preview_surface if self.preview_on else None
        return shown, converted

    def _level(self, level: tuple[float | None, float], now: float) -> float | None:
        """The caller's level the sink pushed, while fresh; else the View's."""
        dbfs, at = level
        if dbfs is not None and now - at < LEVEL_FRESH_S:
            return dbfs
        return self.view.audio_level_dbfs
