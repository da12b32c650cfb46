"""Inputs to commands: the key table (pure), keys and clicks posted into pygame's queue, taps,
and GPIO buttons through gpiozero's own mock pin factory.

Commands reach `on_command` on the asyncio loop's thread, never on the render thread.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pygame
import pytest

from kioskd.ui import KioskScreen, View
from kioskd.ui import input as inp
from kioskd.ui import view as v
from tests.support.screen_probe import ScreenProbe

ONLINE = dict(kiosk_name="Lobby kiosk", online=True, signaling_status="online",
              contact_name="Reception")
SIZE = (1280, 720)

# -- pure --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "state", "command"), [
    ("a", "ringing", "answer"),
    ("d", "ringing", "decline"),
    ("h", "ringing", "hangup"),  # the machine treats it as a decline
    ("return", "ringing", "answer"),
    ("space", "idle", "call"),
    ("c", "idle", "call"),
    ("h", "connected", "hangup"),
    ("escape", "calling", "hangup"),
    ("enter", "connecting", "hangup"),
    ("m", "connected", "mute_mic"),
    ("v", "connected", "camera_off"),
    ("a", "idle", None),  # nothing to answer
    ("c", "connected", None),  # already in a call
    ("m", "idle", None),
    ("space", "ending", None),
    ("x", "idle", None),
])
def test_key_table(key, state, command):
    assert inp.command_for_key(key, state) == command


def test_every_command_is_reachable_by_key():
    reachable = {inp.command_for_key(key, state) for key in inp.KEY_COMMANDS
                 for state in inp.ALLOWED}
    assert reachable - {None} == set(inp.COMMANDS)


def test_hit_picks_the_topmost_button():
    under = inp.Button((0, 0, 100, 100), "call")
    over = inp.Button((50, 50, 100, 100), "hangup")
    assert inp.hit([under, over], (60, 60)) is over
    assert inp.hit([under, over], (10, 10)) is under
    assert inp.hit([under, over], (149, 149)) is over
    assert inp.hit([under, over], (150, 150)) is None


# -- the render thread, dummy driver -----------------------------------------------------------


@pytest.fixture
def dummy_video(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


class Commands:
    """Records commands with the thread they arrived on; `next()` waits for one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.threads: set[int] = set()

    def __call__(self, command: str) -> None:
        self.threads.add(threading.get_ident())
        self.queue.put_nowait(command)

    async def next(self, timeout: float = 2.0) -> str:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def none(self, wait: float = 0.2) -> None:
        with pytest.raises(asyncio.TimeoutError):
            command = await asyncio.wait_for(self.queue.get(), wait)
            pytest.fail(f"unexpected command {command}")


@pytest.fixture
async def kiosk(dummy_video):
    commands = Commands()
    screen = KioskScreen("window", *SIZE, on_command=commands)
    screen.commands = commands  # type: ignore[attr-defined]
    await screen.start()
    yield screen
    await screen.stop()


@pytest.fixture
def probe(kiosk):
    return ScreenProbe(kiosk)


async def showing(probe: ScreenProbe, view: View, name: str) -> None:
    probe.screen.update(view)
    await probe.wait_for_draw()  # a draw of this view, not of the one before
    await probe.wait_for_screen(name)


def post_key(key: int) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="",
                                         scancode=0))


def post_click(pos: tuple[int, int], touch: bool = False) -> None:
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1,
                                         touch=touch))


async def test_keys_posted_to_pygame_give_commands(kiosk, probe):
    commands = kiosk.commands
    await showing(probe, View(state="ringing", peer_name="Alice", **ONLINE), v.INCOMING)
    post_key(pygame.K_a)
    assert await commands.next() == "answer"
    post_key(pygame.K_d)
    assert await commands.next() == "decline"
    await showing(probe, View(state="connected", peer_name="Alice", **ONLINE), v.IN_CALL)
    for key, command in [(pygame.K_m, "mute_mic"), (pygame.K_v, "camera_off"),
                         (pygame.K_h, "hangup"), (pygame.K_ESCAPE, "hangup")]:
        post_key(key)
        assert await commands.next() == command
    post_key(pygame.K_c)  # no second call from inside a call
    await commands.none()
    await showing(probe, View(**ONLINE), v.IDLE)
    post_key(pygame.K_c)
    assert await commands.next() == "call"
    post_key(pygame.K_SPACE)
    assert await commands.next() == "call"
    assert commands.threads == {threading.get_ident()}  # on the loop, not the render thread
    assert kiosk.stats()["commands_sent"] == 8


async def test_clicking_answer_in_manual_mode_answers(kiosk, probe):
    commands = kiosk.commands
    await showing(probe, View(state="ringing", peer_name="Alice", answer_mode="manual",
                              **ONLINE), v.INCOMING)
    buttons = {b.command: b for b in probe.layout().buttons}
    assert set(buttons) == {"answer", "decline"}
    post_click((10, 10))  # nothing there
    await commands.none()
    post_click(buttons["answer"].center)
    assert await commands.next() == "answer"
    # SDL's mouse copy of a touch is dropped; the finger event itself counts, once.
    post_click(buttons["decline"].center, touch=True)
    await commands.none()
    x, y = buttons["decline"].center
    pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, x=x / SIZE[0], y=y / SIZE[1],
                                         touch_id=1, finger_id=0, dx=0.0, dy=0.0,
                                         pressure=1.0))
    assert await commands.next() == "decline"


async def test_touching_the_call_button_calls(kiosk, probe):
    await showing(probe, View(**ONLINE), v.IDLE)
    (button,) = probe.layout().buttons
    post_click(button.center)
    assert await kiosk.commands.next() == "call"


async def test_in_call_buttons_hide_and_a_tap_brings_them_back(kiosk, probe, monkeypatch):
    from kioskd.media.synthetic import TestPattern
    from kioskd.ui import interaction

    commands = kiosk.commands
    monkeypatch.setattr(interaction, "CONTROLS_S", 0.3)
    await showing(probe, View(state="connected", peer_name="Alice", **ONLINE), v.IN_CALL)
    kiosk.show_remote(TestPattern(640, 480).render(0, 0, 0))
    await probe.wait_for_rendered(1)
    hangup = next(b for b in probe.layout().buttons if b.command == "hangup")
    deadline = time.monotonic() + 3
    while probe.layout().buttons and time.monotonic() < deadline:
        await probe.wait_for_draw()
    assert probe.layout().buttons == []  # hidden over the picture
    post_click(hangup.center)  # the first tap only shows them
    await commands.none()
    await probe.wait_for_draw()
    assert any(b.command == "hangup" for b in probe.layout().buttons)
    post_click(hangup.center)
    assert await commands.next() == "hangup"


async def test_a_sleeping_display_wakes_on_a_touch_without_pressing(dummy_video):
    commands = Commands()
    kiosk = KioskScreen("window", *SIZE, sleep_after_s=0.2, on_command=commands)
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        await showing(probe, View(**ONLINE), v.IDLE)
        (button,) = probe.layout().buttons
        await probe.wait_for_screen(v.BLANK, timeout=3)
        post_click(button.center)  # nobody could see what was under the finger
        await probe.wait_for_screen(v.IDLE)
        await commands.none(0.1)
        await probe.wait_for_screen(v.BLANK, timeout=3)
        post_key(pygame.K_c)  # a labelled key (or GPIO button) wakes and acts
        assert await commands.next() == "call"
        await probe.wait_for_screen(v.IDLE)
    finally:
        await kiosk.stop()


# -- GPIO: gpiozero's mock pins ----------------------------------------------------------------


def press(factory, pin: int) -> None:
    """A button to ground: pressed pulls the pin low, released lets the pull-up take it high."""
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


async def test_gpio_call_button_calls(dummy_video, mock_pins):
    commands = Commands()
    kiosk = KioskScreen("window", 640, 360, on_command=commands,
                        gpio_pins={"answer": 17, "hangup": 27, "call": 22})
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        assert kiosk.stats()["gpio_error"] is None
        await showing(probe, View(**ONLINE), v.IDLE)
        press(mock_pins, 22)
        assert await commands.next() == "call"
        press(mock_pins, 17)  # answer: nothing rings
        await commands.none()
        await showing(probe, View(state="ringing", peer_name="Alice", **ONLINE), v.INCOMING)
        press(mock_pins, 17)
        assert await commands.next() == "answer"
        await showing(probe, View(state="connected", peer_name="Alice", **ONLINE), v.IN_CALL)
        press(mock_pins, 27)
        assert await commands.next() == "hangup"
        assert commands.threads == {threading.get_ident()}
        assert kiosk._interaction.gpio.presses == 4
    finally:
        await kiosk.stop()
    assert kiosk._interaction.gpio is None
    mock_pins.pin(22).drive_low()  # closed: no more presses
    await commands.none(0.1)


async def test_gpio_press_wakes_the_display(dummy_video, mock_pins):
    commands = Commands()
    kiosk = KioskScreen("window", 640, 360, sleep_after_s=0.2, on_command=commands,
                        gpio_pins={"call": 22, "answer": -1})
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        await showing(probe, View(**ONLINE), v.IDLE)
        await probe.wait_for_screen(v.BLANK, timeout=3)
        press(mock_pins, 22)
        assert await commands.next() == "call"
        await probe.wait_for_screen(v.IDLE)
    finally:
        await kiosk.stop()


def test_gpio_pin_checks():
    from kioskd.ui.gpio import GpioButtons, GpioError, configured_pins

    assert configured_pins({"answer": -1, "hangup": None, "call": 22}) == {"call": 22}
    with pytest.raises(GpioError, match="both answer and call"):
        configured_pins({"answer": 22, "call": 22})
    with pytest.raises(GpioError, match="not a BCM pin"):
        configured_pins({"call": 40})
    buttons = GpioButtons({"call": -1}, print)  # nothing configured: gpiozero not needed
    assert buttons.pins == {}
    buttons.close()


async def test_a_bad_gpio_pin_leaves_the_screen_working(dummy_video, mock_pins):
    kiosk = KioskScreen("window", 320, 240, gpio_pins={"call": 99})
    probe = ScreenProbe(kiosk)
    await kiosk.start()
    try:
        assert "not a BCM pin" in kiosk.stats()["gpio_error"]
        await probe.wait_for_screen(v.IDLE)
    finally:
        await kiosk.stop()
