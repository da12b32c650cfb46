"""The kiosk screens: which screen a View means (pure), what each draws (off-screen), and the
render thread under SDL's dummy driver (pixels of the remote picture and the preview).

Screenshots of every screen are kept in test-artifacts/screens/dummy/.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pygame
import pytest

from kioskd.media.synthetic import SyntheticCamera, SyntheticTone, TestPattern
from kioskd.ui import KioskScreen, View, make_video_sink, painting, presentation
from kioskd.ui import view as v
from kioskd.ui.display import software_framebuffer
from kioskd.ui.screen import CORNERS
from kioskd.ui.video import SCALING, letterbox
from tests.support.screen_probe import ScreenProbe

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens" / "dummy"
SIZE = (1280, 720)
ONLINE = dict(kiosk_name="Lobby kiosk", online=True, signaling_status="online",
              contact_name="Reception", signaling_url="https://calls.example.org")

@pytest.fixture(autouse=True, scope="module")
def artifacts_dir():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


# -- which screen: pure -----------------------------------------------------------------------


@pytest.mark.parametrize(("state", "call_type", "screen"), [
    ("ringing", "video", v.INCOMING),
    ("calling", "video", v.CALLING),
    ("connecting", "audio", v.CONNECTING),
    ("connected", "video", v.IN_CALL),
    ("connected", "audio", v.AUDIO_CALL),
    ("ending", "video", v.OUTCOME),
    ("idle", "video", v.IDLE),
])
def test_each_call_state_has_its_screen(state, call_type, screen):
    assert v.screen_for(View(state=state, call_type=call_type, **ONLINE), now=100.0) == screen


def test_a_call_wins_over_offline_and_errors():
    view = View(state="ringing", online=False, signaling_status="unauthorized", error="x")
    assert v.screen_for(view, 100.0) == v.INCOMING


def test_outcome_shows_for_a_few_seconds_then_idle():
    view = View(last_outcome="missed", last_outcome_at=100.0, **ONLINE)
    assert v.screen_for(view, 100.0) == v.OUTCOME
    assert v.screen_for(view, 100.0 + v.OUTCOME_SHOW_S - 0.01) == v.OUTCOME
    assert v.screen_for(view, 100.0 + v.OUTCOME_SHOW_S) == v.IDLE


def test_idle_problems_in_order():
    offline = View(kiosk_name="k", online=False, signaling_status="offline")
    assert v.screen_for(offline, 100.0, offline_since=95.0) == v.IDLE  # a short blip
    assert v.screen_for(offline, 100.0, offline_since=100.0 - v.OFFLINE_GRACE_S) == v.OFFLINE
    assert v.screen_for(offline, 100.0, offline_since=None) == v.OFFLINE
    refused = View(online=False, signaling_status="unauthorized", error="camera missing")
    assert v.screen_for(refused, 100.0) == v.ERROR
    assert v.screen_for(View(error="camera missing", **ONLINE), 100.0) == v.ERROR


def test_view_takes_a_state_enum():
    from kioskd.call.states import State

    assert View(state=State.CONNECTED).state == "connected"


def test_texts_and_numbers():
    assert v.format_duration(0) == "0:00"
    assert v.format_duration(75.9) == "1:15"
    assert v.format_duration(3725) == "1:02:05"
    assert v.format_duration(-3) == "0:00"
    assert v.countdown(View(auto_answer_at=103.2), 100.0) == 4
    assert v.countdown(View(auto_answer_at=99.0), 100.0) == 0
    assert v.countdown(View(), 100.0) is None
    assert v.level_fraction(None) == 0.0
    assert v.level_fraction(-120.0) == 0.0
    assert v.level_fraction(-30.0) == pytest.approx(0.5)
    assert v.level_fraction(3.0) == 1.0
    assert v.outcome_title(View(last_outcome="busy", peer_name="Bob")) == "Bob is busy"
    assert v.outcome_title(View(last_outcome="missed")) == "Missed call"
    assert v.outcome_title(View(state="ending")) == "Call ended"


# -- what each screen draws: off-screen, no display -------------------------------------------


@pytest.fixture
def theme():
    pygame.font.init()  # a stopped KioskScreen quits fonts: init per test (idempotent)
    return painting.Theme(SIZE)


def draw_offscreen(theme, name, view, now=100.0, **ctx):
    surface = pygame.Surface(SIZE)
    drawn = painting.draw(name, painting.Ctx(surface, theme, view, now, **ctx))
    return drawn, np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))


def lit_share(pixels, rect):
    x, y, w, h = rect
    region = pixels[y:y + h, x:x + w]
    return float(np.mean(region.max(axis=2) > 60))


EXAMPLES = {
    "idle": (v.IDLE, View(**ONLINE)),
    "incoming_manual": (v.INCOMING, View(state="ringing", peer_name="Alice", **ONLINE)),
    "incoming_auto": (v.INCOMING, View(state="ringing", peer_name="Alice",
                                       auto_answer_at=103.0, **ONLINE)),
    "calling": (v.CALLING, View(state="calling", peer_name="Reception", direction="outgoing",
                                **ONLINE)),
    "connecting": (v.CONNECTING, View(state="connecting", peer_name="Alice", **ONLINE)),
    "audio_call": (v.AUDIO_CALL, View(state="connected", call_type="audio", peer_name="Alice",
                                      connected_since=25.0, audio_level_dbfs=-12.0,
                                      mic_muted=True, **ONLINE)),
    "missed": (v.OUTCOME, View(last_outcome="missed", last_outcome_at=99.0, peer_name="Alice",
                               **ONLINE)),
    "declined": (v.OUTCOME, View(last_outcome="declined", last_outcome_at=99.0,
                                 peer_name="Reception", direction="outgoing", **ONLINE)),
    "busy": (v.OUTCOME, View(last_outcome="busy", last_outcome_at=99.0, peer_name="Reception",
                             direction="outgoing", **ONLINE)),
    "ended": (v.OUTCOME, View(last_outcome="answered", last_outcome_at=99.0, peer_name="Alice",
                              **ONLINE)),
    "offline": (v.OFFLINE, View(kiosk_name="Lobby kiosk", signaling_url="https://calls.x")),
    "unauthorized": (v.ERROR, View(kiosk_name="Lobby kiosk", signaling_status="unauthorized")),
    "camera_missing": (v.ERROR, View(error="camera missing: no camera at /dev/video0. Connect "
                                           "it and restart kioskd", **ONLINE)),
}

# The text each screen must show, by region name.
TEXT_REGIONS = {
    v.IDLE: ("kiosk_name", "status", "clock", "date", "hint"),
    v.INCOMING: ("caption", "peer_name", "avatar"),
    v.CALLING: ("caption", "peer_name", "avatar", "dots"),
    v.CONNECTING: ("caption", "peer_name", "dots"),
    v.AUDIO_CALL: ("peer_name", "duration", "meter_lit", "mic_off"),
    v.OUTCOME: ("title",),
    v.OFFLINE: ("kiosk_name", "title", "problem", "steps"),
    v.ERROR: ("kiosk_name", "title", "problem", "steps"),
}


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_every_screen_draws_readable_text(theme, example):
    name, view = EXAMPLES[example]
    drawn, pixels = draw_offscreen(theme, name, view)
    assert drawn.name == name
    for region in TEXT_REGIONS[name]:
        x, y, w, h = drawn.regions[region]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= SIZE[0] and y + h <= SIZE[1]
        assert lit_share(pixels, drawn.regions[region]) > 0.04, region  # not empty
    for button in drawn.buttons:
        assert lit_share(pixels, button.rect) > 0.5  # a solid, coloured button


def test_big_type(theme):
    drawn, _ = draw_offscreen(theme, v.IDLE, View(**ONLINE))
    assert drawn.regions["clock"][3] >= SIZE[1] * 0.15  # the clock: well over 100 px at 720p
    drawn, _ = draw_offscreen(theme, v.INCOMING, View(state="ringing", peer_name="Alice"))
    assert drawn.regions["peer_name"][3] >= SIZE[1] * 0.07


def test_incoming_buttons_manual_versus_auto_answer(theme):
    manual, _ = draw_offscreen(theme, v.INCOMING, View(state="ringing", peer_name="A"))
    assert [b.command for b in manual.buttons] == ["answer", "decline"]
    auto, pixels = draw_offscreen(theme, v.INCOMING,
                                  View(state="ringing", peer_name="A", auto_answer_at=102.5))
    assert [b.command for b in auto.buttons] == ["decline"]
    assert lit_share(pixels, auto.regions["countdown"]) > 0.05


def test_idle_call_button_only_with_a_contact(theme):
    with_contact, _ = draw_offscreen(theme, v.IDLE, View(**ONLINE))
    assert [b.command for b in with_contact.buttons] == ["call"]
    without, _ = draw_offscreen(theme, v.IDLE, View(kiosk_name="k", online=True))
    assert without.buttons == []


def test_long_names_fit_the_screen(theme):
    name = "Dr. Maximiliane Alexandra von Hohenzollern-Sigmaringen, Head of Reception " * 2
    drawn, _ = draw_offscreen(theme, v.INCOMING, View(state="ringing", peer_name=name))
    x, _, w, _ = drawn.regions["peer_name"]
    assert x >= 0 and x + w <= SIZE[0]


def test_ringing_animates_and_the_audio_meter_follows_the_level(theme):
    first, a = draw_offscreen(theme, v.INCOMING, View(state="ringing", peer_name="A"), now=0.0)
    _, b = draw_offscreen(theme, v.INCOMING, View(state="ringing", peer_name="A"), now=0.25)
    assert first.animated and not np.array_equal(a, b)
    quiet, _ = draw_offscreen(theme, v.AUDIO_CALL, View(state="connected", call_type="audio"),
                              level_dbfs=-50.0)
    loud, _ = draw_offscreen(theme, v.AUDIO_CALL, View(state="connected", call_type="audio"),
                             level_dbfs=-6.0)
    assert loud.regions["meter_lit"][2] > 3 * quiet.regions["meter_lit"][2] > 0


@pytest.mark.parametrize("name, call_type", [(v.IN_CALL, "video"), (v.AUDIO_CALL, "audio")])
def test_media_warnings_are_amber_pills_beside_mic_off(theme, name, call_type):
    view = View(state="connected", call_type=call_type, peer_name="Alice", mic_muted=True,
                media_warnings=("No microphone", "Camera lost"), **ONLINE)
    drawn, pixels = draw_offscreen(theme, name, view)
    mic_off, first, second = (drawn.regions[r] for r in
                              ("mic_off", "media_warning_0", "media_warning_1"))
    assert mic_off[0] + mic_off[2] <= first[0] and first[0] + first[2] <= second[0]
    assert second[0] + second[2] <= SIZE[0] and first[1] == mic_off[1]
    for x, y, w, h in (first, second):
        corner = pixels[y + h // 2, x + 2]  # the pill's edge, beside its text
        assert tuple(corner) == presentation.AMBER
        assert lit_share(pixels, (x, y, w, h)) > 0.5
    plain, _ = draw_offscreen(theme, name, View(state="connected", call_type=call_type))
    assert not any(r.startswith("media_warning") for r in plain.regions)


@pytest.mark.parametrize("corner", CORNERS)
def test_pip_rect_sits_in_its_corner(corner):
    x, y, w, h = painting.pip_rect(SIZE, (640, 480), corner)
    assert w == round(SIZE[0] * 0.22) & ~1 and abs(w / h - 4 / 3) < 0.02
    assert (x < SIZE[0] / 2) == corner.endswith("left")
    assert (y < SIZE[1] / 2) == corner.startswith("top")
    assert min(x, y, SIZE[0] - x - w, SIZE[1] - y - h) == round(SIZE[1] * 0.04)  # the margin
    lifted = painting.pip_rect(SIZE, (640, 480), corner, controls=True)
    assert lifted[1] + lifted[3] < SIZE[1] * painting.CONTROLS_TOP


# -- the render thread under the dummy driver -------------------------------------------------


@pytest.fixture
def dummy_video(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


@pytest.fixture
async def screen(dummy_video):
    commands: list[str] = []
    kiosk = KioskScreen("window", *SIZE, preview_corner="top-right", on_command=commands.append)
    kiosk.commands = commands  # type: ignore[attr-defined]
    await kiosk.start()
    yield kiosk
    await kiosk.stop()


def expected_picture(frame, screen_size=SIZE):
    """The screen a frame alone should give: the picture scaled into its letterbox, black bars."""
    x, y, w, h = letterbox((frame.width, frame.height), screen_size)
    picture = frame.reformat(width=w, height=h, format="rgb24",
                             interpolation=SCALING).to_ndarray()
    canvas = np.zeros((screen_size[1], screen_size[0], 3), dtype=np.uint8)
    canvas[y:y + h, x:x + w] = picture
    return canvas, (x, y, w, h)


def overlay_mask(layout, shape, pad=6):
    """True where no overlay (status, pills, preview, buttons) was drawn."""
    mask = np.ones(shape[:2], dtype=bool)
    for name, (x, y, w, h) in layout.regions.items():
        if name != "video":
            mask[max(0, y - pad):y + h + pad, max(0, x - pad):x + w + pad] = False
    return mask


def assert_same_picture(actual, expected, mask):
    # The screen scales in YUV, then converts to its own pixel layout ("bgra"); the reference
    # scales and converts to rgb24 in one pass. They agree to a level or two of rounding but
    # at sharp colour edges, where the chroma is interpolated at another step.
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))[mask]
    assert diff.mean() < 1.0, diff.mean()
    assert np.percentile(diff, 99.9) <= 24


async def show_call(probe, frame, **view):
    screen = probe.screen
    screen.update(View(state="connected", peer_name="Alice", connected_since=time.monotonic(),
                       **ONLINE, **view))
    rendered = screen.rendered_frames
    screen.show_remote(frame)
    await probe.wait_for_rendered(rendered + 1, timeout=5)
    return await probe.snapshot()


@pytest.fixture(params=["direct", "blit"])
async def video_screen(request, dummy_video, monkeypatch):
    """A screen that copies the picture straight into the display's pixels, or blits RGB
    (what a display with another pixel layout gets)."""
    from kioskd.ui import renderer

    if request.param == "blit":
        monkeypatch.setattr(renderer, "direct_video_ok", lambda surface: False)
    kiosk = KioskScreen("window", *SIZE, preview_corner="top-right")
    await kiosk.start()
    yield kiosk
    await kiosk.stop()
    assert kiosk.stats()["video_path"] == request.param


@pytest.mark.parametrize("source", [(640, 480), (1280, 720), (320, 240)])
async def test_remote_picture_fills_its_letterbox(video_screen, source):
    screen = video_screen
    probe = ScreenProbe(screen)
    frame = TestPattern(*source).render(7, 7, 0)
    shot = await show_call(probe, frame)
    expected, rect = expected_picture(frame)
    layout = probe.layout()
    assert layout.name == v.IN_CALL and layout.regions["video"] == rect
    assert_same_picture(shot, expected, overlay_mask(layout, shot.shape))
    x, y, w, h = rect
    if x:  # the bars are black, the picture reaches both edges of its box
        mask = overlay_mask(layout, shot.shape)
        assert not shot[:, :x][mask[:, :x]].any()
        assert not shot[:, x + w:][mask[:, x + w:]].any()
        row = SIZE[1] // 2
        assert shot[row, x].max() > 60 and shot[row, x + w - 1].max() > 60
    await probe.save_screenshot(
        ARTIFACTS / f"in_call_{source[0]}x{source[1]}_{screen.stats()['video_path']}.png")


def overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("corner", CORNERS)
async def test_preview_is_in_the_configured_corner(dummy_video, corner):
    kiosk = KioskScreen("window", *SIZE, preview_corner=corner)
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        preview = TestPattern(320, 240).render(3, 3, 0)
        kiosk.show_preview(preview)
        shot = await show_call(probe, TestPattern(640, 480).render(0, 0, 0))
        if "pip" not in probe.layout().regions:  # the preview came after the first frame
            await probe.wait_for_draw()
            shot = await probe.snapshot()
        layout = probe.layout()
        rect = layout.regions["pip"]
        # The buttons show for the first seconds of a call: a bottom preview sits above them.
        assert rect == painting.pip_rect(SIZE, (320, 240), corner, controls=True)
        assert layout.buttons and not any(overlap(rect, b.rect) for b in layout.buttons)
        x, y, w, h = rect
        reference = preview.reformat(width=w, height=h, format="rgb24").to_ndarray()[:, ::-1]
        diff = np.abs(shot[y:y + h, x:x + w].astype(np.int16) - reference)
        assert diff.mean() < 1.0  # the mirrored camera picture, exactly there
        if corner == "top-left":  # the status moves out of its way
            assert probe.layout().regions["status"][0] > SIZE[0] / 2
        await probe.save_screenshot(ARTIFACTS / f"pip_{corner}.png")
    finally:
        await kiosk.stop()


async def test_preview_off_and_camera_off(dummy_video):
    kiosk = KioskScreen("window", *SIZE, preview=False)
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        kiosk.show_preview(TestPattern(320, 240).render(0, 0, 0))
        await show_call(probe, TestPattern(640, 480).render(0, 0, 0))
        assert "pip" not in probe.layout().regions
        assert kiosk.stats()["preview_frames"] == 0
        await show_call(probe, TestPattern(640, 480).render(1, 1, 0), camera_off=True,
                        mic_muted=True)
        regions = probe.layout().regions
        assert {"pip", "pip_label", "camera_off", "mic_off"} <= set(regions)
    finally:
        await kiosk.stop()


async def test_every_screen_renders_and_is_kept_as_a_screenshot(screen, monkeypatch):
    probe = ScreenProbe(screen)
    monkeypatch.setattr(v, "OFFLINE_GRACE_S", 0.0)  # the offline screen at once
    now = time.monotonic()
    for example, (name, view) in EXAMPLES.items():
        # Times in the examples are relative to 100 s; move them to now.
        view = View(**{**view.__dict__,
                       "last_outcome_at": now if view.last_outcome_at else None,
                       "auto_answer_at": now + 3 if view.auto_answer_at else None,
                       "connected_since": now - 75 if view.connected_since else None})
        screen.update(view)
        await probe.wait_for_screen(name, timeout=5)
        await probe.wait_for_draw()
        shot = await probe.snapshot()
        assert shot.shape == (SIZE[1], SIZE[0], 3) and shot.max() > 100
        await probe.save_screenshot(ARTIFACTS / f"{example}.png")
    assert (ARTIFACTS / "idle.png").stat().st_size > 1000


async def test_a_new_call_does_not_flash_the_last_picture(screen):
    probe = ScreenProbe(screen)
    await show_call(probe, TestPattern(640, 480).render(0, 0, 0))
    screen.update(View(state="idle", **ONLINE))
    await probe.wait_for_screen(v.IDLE)
    screen.update(View(state="connected", peer_name="Bob", **ONLINE))
    await probe.wait_for_screen(v.IN_CALL)
    assert "video" not in probe.layout().regions
    assert "waiting" in probe.layout().regions


async def test_a_frame_that_comes_while_connecting_shows_once_connected(screen):
    probe = ScreenProbe(screen)
    screen.update(View(state="connecting", peer_name="Alice", **ONLINE))
    await probe.wait_for_screen(v.CONNECTING)
    screen.show_remote(TestPattern(640, 480).render(0, 0, 0))
    await probe.wait_for_draw()
    assert screen.rendered_frames == 0
    connected_at = time.monotonic()
    screen.update(View(state="connected", peer_name="Alice", **ONLINE))
    await probe.wait_for_rendered(1, timeout=1)
    assert screen.stats()["first_rendered_at"] - connected_at < 1.0


async def loop_lag_monitor(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.005)
        lags.append(time.monotonic() - before - 0.005)


async def test_video_sink_renders_a_stream_without_blocking_the_loop(screen):
    probe = ScreenProbe(screen)
    camera, tone = SyntheticCamera(640, 480, fps=30), SyntheticTone()
    sink = make_video_sink(screen)
    sink.add_track(camera)
    sink.add_track(tone)
    screen.update(View(state="connected", peer_name="Alice", connected_since=time.monotonic(),
                       call_type="video", **ONLINE))
    lags: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(loop_lag_monitor(lags, stop))
    await sink.start()
    try:
        await probe.wait_for_rendered(15, timeout=5, sink=sink)
    finally:
        stop.set()
        await monitor
        camera.stop()
        tone.stop()
        await sink.stop()
    stats = sink.stats()
    assert stats["rendered_frames"] >= 15
    assert stats["first_rendered_at"] >= stats["first_video_at"]
    assert stats["render_cost_ms_p50"] > 0
    assert screen.stats()["fps"] > 15
    assert screen._slots.audio_level[0] is not None  # the meter's level came from the sink
    assert max(lags) < 0.05


async def test_the_render_thread_sleeps_between_frames(screen):
    # The call's clock is due to tick while the video flows: the frames redraw it, and the
    # thread must not wake over and over in between.
    probe = ScreenProbe(screen)
    camera = SyntheticCamera(320, 240, fps=24)
    sink = make_video_sink(screen)
    sink.add_track(camera)
    screen.update(View(state="connected", peer_name="Alice", call_type="video",
                       connected_since=time.monotonic() - 0.9, **ONLINE))
    await sink.start()
    try:
        await probe.wait_for_rendered(2, timeout=5, sink=sink)
        passes = screen.stats()["render_passes"]
        await probe.wait_for_rendered(2 + 36, timeout=5, sink=sink)  # 1.5 s, over a clock tick
        passes = screen.stats()["render_passes"] - passes
    finally:
        camera.stop()
        await sink.stop()
    assert passes <= 36 * 2, passes  # a frame's wake-up each, and a few more


async def test_slow_screen_keeps_only_the_newest_frame(dummy_video):
    kiosk = KioskScreen("window", *SIZE)
    pattern = TestPattern(640, 480)
    frames = [pattern.render(i * 20, i, 0) for i in range(3)]  # the white bar moves
    for frame in frames:
        kiosk.show_remote(frame)  # not started yet: nothing takes them
    assert kiosk.dropped_frames == 2
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        kiosk.update(View(state="connected", peer_name="Alice", **ONLINE))
        await probe.wait_for_rendered(1)
        shot = await probe.snapshot()
        assert kiosk.rendered_frames == 1
        expected, _ = expected_picture(frames[2])
        assert_same_picture(shot, expected, overlay_mask(probe.layout(), shot.shape))
    finally:
        await kiosk.stop()


async def test_display_sleeps_when_idle_and_a_call_wakes_it(dummy_video):
    kiosk = KioskScreen("window", 640, 360, sleep_after_s=0.3)
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        kiosk.update(View(**ONLINE))
        await probe.wait_for_screen(v.IDLE)
        await probe.wait_for_screen(v.BLANK, timeout=3)
        assert kiosk.stats()["blanked"]
        assert not (await probe.snapshot()).any()  # all black
        kiosk.update(View(state="ringing", peer_name="Alice", **ONLINE))
        await probe.wait_for_screen(v.INCOMING, timeout=1)
        assert not kiosk.stats()["blanked"]
        await asyncio.sleep(0.5)  # longer than sleep_after_s: a call never sleeps
        assert kiosk.stats()["screen"] == v.INCOMING
    finally:
        await kiosk.stop()


async def test_backlight_follows_sleep(dummy_video, tmp_path):
    bl_power = tmp_path / "bl_power"
    bl_power.write_text("0")
    kiosk = KioskScreen("window", 640, 360, sleep_after_s=0.2, backlight=str(bl_power))
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        await probe.wait_for_screen(v.BLANK, timeout=3)
        assert bl_power.read_text() == "4"
        kiosk.update(View(state="ringing", peer_name="A", **ONLINE))
        await probe.wait_for_screen(v.INCOMING)
        assert bl_power.read_text() == "0"
    finally:
        await kiosk.stop()


async def test_from_config_and_bad_arguments(dummy_video):
    from types import SimpleNamespace

    config = SimpleNamespace(
        display=SimpleNamespace(mode="window", preview=False, preview_corner="top-left",
                                sleep_after_s=60.0, backlight=""),
        input=SimpleNamespace(gpio_answer_pin=-1, gpio_hangup_pin=-1, gpio_call_pin=-1))
    kiosk = KioskScreen.from_config(config, on_command=print, width=320, height=240)
    assert (kiosk.preview, kiosk.preview_corner, kiosk.sleep_after_s) == (False, "top-left", 60)
    await kiosk.start()
    assert kiosk.screen_size == (320, 240) and kiosk.stats()["gpio_error"] is None
    await kiosk.stop()
    with pytest.raises(ValueError, match="corner"):
        KioskScreen("window", preview_corner="middle")
    with pytest.raises(ValueError, match="display mode"):
        KioskScreen("hdmi")


async def test_a_display_that_cannot_open_says_so(monkeypatch):
    from kioskd.ui.display import DisplayError

    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    kiosk = KioskScreen("window")
    with pytest.raises(DisplayError, match="cannot open the window display"):
        await kiosk.start()
    await kiosk.stop()


async def test_a_drawing_bug_is_survived_and_a_dead_screen_says_so(dummy_video, monkeypatch):
    from kioskd.ui import display

    kiosk = KioskScreen("window", 320, 240)
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        await probe.wait_for_screen(v.IDLE)
        real, calls = painting.DRAW[v.INCOMING], []

        def flaky(ctx, shown):
            calls.append(ctx.now)
            if len(calls) == 1:
                raise RuntimeError("a bug in one pass")
            return real(ctx, shown)

        monkeypatch.setitem(painting.DRAW, v.INCOMING, flaky)
        kiosk.update(View(state="ringing", peer_name="Alice"))
        await probe.wait_for_screen(v.INCOMING)  # drawn on the next pass

        def broken(ctx, shown):
            raise RuntimeError("a bug in every pass")

        monkeypatch.setattr(display, "MAX_FAILED_PASSES", 3)
        monkeypatch.setitem(painting.DRAW, v.OUTCOME, broken)
        kiosk.update(View(state="ending"))
        with pytest.raises(RuntimeError, match="screen thread failed"):
            await asyncio.wait_for(kiosk.wait_closed(), 5)
    finally:
        await kiosk.stop()


async def test_wait_closed_returns_after_stop(dummy_video):
    kiosk = KioskScreen("window", 320, 240)
    await kiosk.start()
    waiting = asyncio.create_task(kiosk.wait_closed())
    await kiosk.stop()
    await asyncio.wait_for(waiting, 2)


def test_importing_the_ui_needs_no_sdl():
    import subprocess
    import sys

    code = "import sys, kioskd.ui; print('pygame' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"


def test_letterbox():
    assert letterbox((640, 480), (1280, 720)) == (160, 0, 960, 720)
    assert letterbox((1280, 720), (1280, 720)) == (0, 0, 1280, 720)
    assert letterbox((1920, 1080), (1024, 768)) == (0, 96, 1024, 576)


def test_only_x11_draws_without_an_opengl_texture():
    # KMS/DRM (a Pi's console) and Wayland have no framebuffer of their own in SDL 2: asking
    # for one there would leave the kiosk without a screen.
    assert software_framebuffer("x11")
    for driver in ("KMSDRM", "kmsdrm", "wayland", "dummy", "offscreen"):
        assert not software_framebuffer(driver)


# -- the hook for tests and benchmarks, and the self-test's wait ------------------------------


async def test_an_observer_sees_each_pass_until_it_is_done(screen):
    loop = asyncio.get_running_loop()
    seen: list[str | None] = []
    failures: list[str] = []
    done = loop.create_future()

    def observer(report) -> bool:
        seen.append(report.screen)
        if len(seen) == 3:
            loop.call_soon_threadsafe(done.set_result, None)
            return True
        return False

    def failing(report) -> bool:
        failures.append(report.screen)
        raise RuntimeError("a broken observer")

    screen.observe(failing)
    screen.observe(observer)
    await asyncio.wait_for(done, 5)
    probe = ScreenProbe(screen)
    for _ in range(3):  # more passes, and draws: neither is called again
        await probe.wait_for_draw()
    assert seen == [v.IDLE] * 3 and len(failures) == 1


async def test_the_first_screen_shown_is_idle(screen):
    assert await asyncio.wait_for(screen.wait_shown(), 5) == v.IDLE
    assert v.IDLE in screen.stats()["first_screen_at"]


async def test_the_selftest_sees_the_idle_screen(dummy_video):
    from kioskd.config import load_config
    from kioskd.selftest import _display

    config = load_config(None, ["display.mode=window"])
    assert await _display(config) == "window: idle screen shown at 1280x720"
