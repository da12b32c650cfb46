"""The kiosk screen on a real X server (Xvfb, 1280x720), started full screen.

Pixels are read from the X server's own framebuffer (Xvfb -fbdir keeps it in a file, in XWD
format), not from pygame: what these tests check is what a monitor would show.

Acceptance (the issue): the idle screen within 3 s of start; the caller's video filling the
screen within 1 s of the call connecting. Both are measured here and written with the render
numbers to test-artifacts/screens/xvfb/timings.json, next to the screenshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pygame
import pytest

from kioskd.media.synthetic import SyntheticCamera, TestPattern
from kioskd.ui import KioskScreen, View, make_video_sink, painting
from kioskd.ui import view as v
from kioskd.ui.video import SCALING
from tests.support.screen_probe import ScreenProbe
from tests.support.xvfb import running_xvfb

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens" / "xvfb"
SIZE = (1280, 720)
ONLINE = dict(kiosk_name="Lobby kiosk", online=True, signaling_status="online",
              contact_name="Reception", signaling_url="https://calls.example.org")

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb is not installed (apt-get install xvfb)")


@contextlib.contextmanager
def xvfb_with_framebuffer(directory: Path, width: int, height: int) -> Iterator[tuple[str, Path]]:
    """Xvfb on a free display, its screen memory-mapped to a file; yields (DISPLAY, file)."""
    with running_xvfb(width, height, fbdir=directory) as display:
        yield display, directory / "Xvfb_screen0"


def read_xwd(path: Path) -> np.ndarray:
    """An XWD file of a 24-bit TrueColor screen (what Xvfb -fbdir writes) as H x W x 3 RGB."""
    data = path.read_bytes()
    header = np.frombuffer(data[:100], dtype=">u4")
    header_size, depth, width, height = int(header[0]), header[3], int(header[4]), int(header[5])
    byte_order, bits_per_pixel, bytes_per_line = header[7], header[11], int(header[12])
    masks, ncolors = tuple(header[14:17]), int(header[19])
    assert (depth, bits_per_pixel, byte_order) == (24, 32, 0), "expected 24-bit LSB-first"
    assert masks == (0xFF0000, 0x00FF00, 0x0000FF)
    offset = header_size + ncolors * 12  # each colormap entry is 12 bytes
    rows = np.frombuffer(data, dtype=np.uint8, count=height * bytes_per_line, offset=offset)
    bgrx = rows.reshape(height, bytes_per_line)[:, :width * 4].reshape(height, width, 4)
    return np.ascontiguousarray(bgrx[..., 2::-1])


def save_png(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pygame.image.save(pygame.surfarray.make_surface(pixels.transpose(1, 0, 2)), str(path))


@pytest.fixture(scope="module")
def x_display(tmp_path_factory):
    with xvfb_with_framebuffer(tmp_path_factory.mktemp("xvfb"), *SIZE) as (display, fb):
        yield display, fb


@pytest.fixture
def on_x(x_display, monkeypatch):
    display, fb = x_display
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return fb


def lit_share(pixels: np.ndarray, rect) -> float:
    x, y, w, h = rect
    return float(np.mean(pixels[y:y + h, x:x + w].max(axis=2) > 60))


def overlay_mask(layout, shape, pad=6) -> np.ndarray:
    mask = np.ones(shape[:2], dtype=bool)
    for name, (x, y, w, h) in layout.regions.items():
        if name != "video":
            mask[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad] = False
    return mask


async def test_fullscreen_kiosk_on_x(on_x, monkeypatch):
    """Start full screen, idle within 3 s; a call's first frame on screen within 1 s."""
    fb = on_x
    commands: asyncio.Queue[str] = asyncio.Queue()
    timings: dict[str, object] = {}
    monkeypatch.setenv("SDL_FRAMEBUFFER_ACCELERATION", "")  # restored to unset afterwards
    monkeypatch.delenv("SDL_FRAMEBUFFER_ACCELERATION")
    screen = KioskScreen("fullscreen", preview_corner="bottom-right",
                         on_command=commands.put_nowait)
    probe = ScreenProbe(screen)
    started = time.monotonic()
    await screen.start()
    try:
        # On X the screen draws through X's shared-memory image, not an OpenGL texture.
        assert os.environ.get("SDL_FRAMEBUFFER_ACCELERATION") == "0"
        screen.update(View(**ONLINE))
        await probe.wait_for_draw()
        await probe.wait_for_screen(v.IDLE, timeout=3)
        idle_s = screen.stats()["first_screen_at"][v.IDLE] - started
        timings["start_to_idle_s"] = round(idle_s, 3)
        assert screen.screen_size == SIZE  # the whole X screen, not a 1024x768 guess
        assert idle_s < 3.0

        # What X shows is exactly what was drawn, and the idle screen has its texts.
        shown = read_xwd(fb)
        drawn = await probe.snapshot()
        assert np.array_equal(shown, drawn)
        layout = probe.layout()
        for region in ("kiosk_name", "status", "clock", "date"):
            assert lit_share(shown, layout.regions[region]) > 0.04, region
        save_png(shown, ARTIFACTS / "idle.png")

        # Every other screen, as X shows it.
        monkeypatch.setattr(v, "OFFLINE_GRACE_S", 0.0)  # the offline screen at once
        now = time.monotonic()
        for name, view in [
            ("incoming", View(state="ringing", peer_name="Alice", **ONLINE)),
            ("incoming_auto", View(state="ringing", peer_name="Alice", auto_answer_at=now + 5,
                                   **ONLINE)),
            ("calling", View(state="calling", peer_name="Reception", direction="outgoing",
                             **ONLINE)),
            ("connecting", View(state="connecting", peer_name="Alice", **ONLINE)),
            ("audio_call", View(state="connected", call_type="audio", peer_name="Alice",
                                connected_since=now - 42, audio_level_dbfs=-14, **ONLINE)),
            ("missed", View(last_outcome="missed", last_outcome_at=now, peer_name="Alice",
                            **ONLINE)),
            ("unauthorized", View(kiosk_name="Lobby kiosk", signaling_status="unauthorized")),
            ("offline", View(kiosk_name="Lobby kiosk", signaling_url="https://calls.example.org")),
            ("camera_missing", View(error="camera missing: no camera at /dev/video0. Connect "
                                          "it and restart kioskd", **ONLINE)),
        ]:
            screen.update(view)
            await probe.wait_for_draw()
            shown = read_xwd(fb)
            assert shown.max() > 100, name
            title = probe.layout().regions.get("peer_name") or probe.layout().regions["title"]
            assert lit_share(shown, title) > 0.04, name
            save_png(shown, ARTIFACTS / f"{name}.png")

        # The call connects; its first frame arrives: on screen within 1 s.
        screen.update(View(state="connecting", peer_name="Alice", **ONLINE))
        await probe.wait_for_screen(v.CONNECTING)
        preview = TestPattern(320, 240).render(1, 1, 0)
        screen.show_preview(preview)
        connected_at = time.monotonic()
        screen.update(View(state="connected", peer_name="Alice", connected_since=connected_at,
                           **ONLINE))
        frame = TestPattern(640, 480).render(0, 0, 0)
        screen.show_remote(frame)
        await probe.wait_for_rendered(1, timeout=1)
        video_s = screen.stats()["first_rendered_at"] - connected_at
        timings["connected_to_first_frame_s"] = round(video_s, 4)
        assert video_s < 1.0
        await probe.wait_for_draw()  # the preview may have come one pass later

        shown = read_xwd(fb)
        layout = probe.layout()
        x, y, w, h = layout.regions["video"]
        assert (x, y, w, h) == (160, 0, 960, 720)  # 4:3 letterboxed in 16:9
        expected = np.zeros_like(shown)
        expected[y:y + h, x:x + w] = frame.reformat(width=w, height=h, format="rgb24",
                                                    interpolation=SCALING).to_ndarray()
        mask = overlay_mask(layout, shown.shape)
        diff = np.abs(shown.astype(np.int16) - expected)[mask]
        # Rounding, and sharp colour edges (the screen scales in YUV first): see
        # test_ui_screens.assert_same_picture.
        assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 24
        px, py, pw, ph = layout.regions["pip"]
        # Bottom-right as configured (lifted above the buttons while they show).
        assert (px, py, pw, ph) == painting.pip_rect(SIZE, (320, 240), "bottom-right", True)
        assert px + pw / 2 > SIZE[0] / 2 and py + ph / 2 > SIZE[1] / 2
        mirrored = preview.reformat(width=pw, height=ph, format="rgb24",
                                    interpolation=SCALING).to_ndarray()[:, ::-1]
        assert np.abs(shown[py:py + ph, px:px + pw].astype(np.int16) - mirrored).mean() < 1.0
        save_png(shown, ARTIFACTS / "in_call.png")

        # A 30 fps stream of 1280x720 through the per-call sink: the rate is held.
        camera = SyntheticCamera(1280, 720, fps=30)
        sink = make_video_sink(screen)
        sink.add_track(camera)
        await sink.start()
        try:
            await probe.wait_for_rendered(10, timeout=5, sink=sink)  # settle
            first, t0 = screen.rendered_frames, time.monotonic()
            await probe.wait_for_rendered(10 + 45, timeout=5, sink=sink)
            fps = (screen.rendered_frames - first) / (time.monotonic() - t0)
        finally:
            camera.stop()
            await sink.stop()
        stats = screen.stats()
        timings.update(
            stream_fps=round(fps, 1),
            render_cost_ms_p50=round(stats["render_cost_ms_p50"], 2),
            render_cost_ms_p95=round(stats["render_cost_ms_p95"], 2),
            convert_ms_p50=round(stats["convert_ms_p50"], 2),
            flip_ms_p50=round(stats["flip_ms_p50"], 2),
            video_path=stats["video_path"],
        )
        assert fps > 27
        save_png(read_xwd(fb), ARTIFACTS / "in_call_720p.png")

        # A key on the X display's queue hangs up.
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_h, mod=0, unicode="h",
                                             scancode=0))
        assert await asyncio.wait_for(commands.get(), 2) == "hangup"
        assert commands.empty()
    finally:
        await screen.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
