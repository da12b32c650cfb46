"""Input and blanking: what a key, touch or button does, when the in-call buttons show, and
when the display sleeps (with its backlight).

Keys, touch and mouse are read on the render thread, which owns SDL; GPIO buttons press from
gpiozero's thread through the slots (`KioskScreen.press`). A command goes to the app's
`on_command` on the asyncio loop (kioskd.handoff.call_soon): the render thread never calls
into app state. The display blanks after `sleep_after_s` of an idle kiosk and nobody touching
it, and wakes on a call, a touch, a key or a button.
"""

from __future__ import annotations

import asyncio
import glob
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..handoff import call_soon
from .stats import ScreenStats
from .view import IN_CALL, View

log = logging.getLogger(__name__)

EVENT_POLL = 0.05  # seconds: how often input is read (at most, and when nothing else wakes)
CONTROLS_S = 5.0  # in-call buttons stay this long over the picture after a touch
_BL_POWER_ON, _BL_POWER_OFF = "0", "4"  # FB_BLANK_UNBLANK, FB_BLANK_POWERDOWN


class Backlight:
    """Switches a backlight through sysfs `bl_power` (the Pi touch display has one).

    `path` is a bl_power file, or "auto" for the first /sys/class/backlight/*/bl_power.
    Writing needs permission (a udev rule giving the kioskd user the file, or the video
    group on Raspberry Pi OS); failures are logged once and the screen just goes black.
    """

    def __init__(self, path: str) -> None:
        if path == "auto":
            found = sorted(glob.glob("/sys/class/backlight/*/bl_power"))
            path = found[0] if found else ""
        self.path = path
        self._warned = False

    def set(self, on: bool) -> None:
        if not self.path:
            return
        try:
            with open(self.path, "w") as file:
                file.write(_BL_POWER_ON if on else _BL_POWER_OFF)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot switch the backlight at %s: %s", self.path, exc)
                self._warned = True


class Interaction:
    """Touch, keys and GPIO buttons to commands; the in-call buttons; the display's sleep.

    The render thread calls `open`, then every pass `on_view` (a new View), `take_input`
    and `sleep_if_idle`, and `shown` after every draw. The loop calls `deliver_on`,
    `open_gpio` and `close_gpio`.
    """

    def __init__(self, statistics: ScreenStats, *, sleep_after_s: float,
                 backlight: str | None, on_command: Callable[[str], None] | None,
                 gpio_pins: Mapping[str, int | None] | None, gpio_pin_factory: Any) -> None:
        self.statistics = statistics
        self.sleep_after_s = sleep_after_s
        self.on_command = on_command
        self.blanked = False
        self.gpio: Any = None  # gpio.GpioButtons while open
        self.gpio_error: str | None = None
        self._backlight = Backlight(backlight) if backlight else None
        self._gpio_pins = dict(gpio_pins or {})
        self._gpio_pin_factory = gpio_pin_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        # The render thread's own.
        self._pygame: Any = None
        self._inp: Any = None  # the input module
        self._call_state = "idle"
        self._screen: str | None = None  # what the person sees, and its buttons
        self._buttons: list[Any] = []
        self._last_activity = 0.0
        self.controls_until = 0.0
        self._input_read_at = 0.0

    # -- the loop's side ----------------------------------------------------------------------

    def deliver_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commands go to on_command on `loop` from now on."""
        self._loop = loop

    def open_gpio(self, press: Callable[[str], None]) -> None:
        """The GPIO buttons, if pins are configured; a failure is logged (gpio_error)."""
        if not any(pin is not None and pin >= 0 for pin in self._gpio_pins.values()):
            return
        from .gpio import GpioButtons, GpioError

        try:
            self.gpio = GpioButtons(self._gpio_pins, press, pin_factory=self._gpio_pin_factory)
        except GpioError as exc:
            # Buttons are a convenience: the screen and touch still work without them.
            self.gpio_error = str(exc)
            log.error("%s; the kiosk runs without its GPIO buttons", exc)

    def close_gpio(self) -> None:
        if self.gpio is not None:
            self.gpio.close()
            self.gpio = None

    # -- the render thread's side -------------------------------------------------------------

    def open(self, pygame: Any, now: float) -> None:
        """The display is open: nobody has touched it yet, and it is lit."""
        from . import input as inp

        self._pygame, self._inp = pygame, inp
        self._last_activity = now
        self.light()

    def light(self) -> None:
        """Backlight on, whatever it was: a restart must not leave the screen dark."""
        if self._backlight is not None:
            self._backlight.set(True)

    def on_view(self, old: View, view: View, now: float) -> None:
        self._call_state = view.state
        if view.state != old.state or view.last_outcome_at != old.last_outcome_at:
            self._last_activity = now
            if view.state != "idle" and self.blanked:
                self._set_blank(False)  # an incoming (or outgoing) call wakes the display
        if view.state != old.state and view.state == "connected":
            self.controls_until = now + CONTROLS_S

    def take_input(self, size: tuple[int, int], now: float, presses: list[str]) -> bool:
        """Read SDL's events (every EVENT_POLL) and the handed GPIO presses; True if
        anything on screen changes."""
        changed = False
        if now - self._input_read_at >= EVENT_POLL:  # not on every frame: it costs a pass
            self._input_read_at = now                  # 5-10% of its time on X11
            for event in self._pygame.event.get():
                changed |= self._on_event(event, size, now)
        for command in presses:
            changed |= self._on_input(self._inp.Input("button", key=command), now)
        return changed

    def sleep_if_idle(self, now: float) -> bool:
        """Blank an idle display nobody has touched for sleep_after_s; True if it just did."""
        if (not self.blanked and self.sleep_after_s > 0 and self._call_state == "idle"
                and now - self._last_activity >= self.sleep_after_s):
            self._set_blank(True)
            return True
        return False

    def shown(self, screen: str, buttons: list[Any]) -> None:
        """What was just drawn: touches hit these buttons."""
        self._screen, self._buttons = screen, buttons

    def controls_shown(self, now: float) -> bool:
        return now < self.controls_until

    def _on_event(self, event: Any, size: tuple[int, int], now: float) -> bool:
        pygame = self._pygame
        if event.type == pygame.QUIT:
            log.debug("ignoring the window's quit event")  # the daemon decides, not the window
            return False
        if event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
            return True
        action = self._inp.translate(event, size)
        return False if action is None else self._on_input(action, now)

    def _on_input(self, action: Any, now: float) -> bool:
        inp = self._inp
        self._last_activity = now
        if self.blanked:
            self._set_blank(False)
            if action.kind == "pointer":
                return True  # the first touch only wakes: nobody saw what was under it
        if action.kind == "key":
            command = inp.command_for_key(action.key, self._call_state)
        elif action.kind == "button":
            command = action.key if inp.allowed(action.key, self._call_state) else None
        else:
            command = self._touched(action.pos, now)
        if command is not None:
            self.statistics.commands_sent += 1
            log.info("input: %s", command)
            call_soon(self._loop, self._deliver, command)
        return True

    def _touched(self, pos: tuple[float, float], now: float) -> str | None:
        """The command of the button under a touch. Over the picture, a touch shows the
        buttons again (and presses nothing if they were hidden)."""
        if self._screen == IN_CALL:
            hidden = now >= self.controls_until
            self.controls_until = now + CONTROLS_S
            if hidden:
                return None
        button = self._inp.hit(self._buttons, pos)
        if button is not None and self._inp.allowed(button.command, self._call_state):
            return button.command
        return None

    def _set_blank(self, blank: bool) -> None:
        if blank == self.blanked:
            return
        self.blanked = blank
        log.info("display %s", "asleep" if blank else "awake")
        if self._backlight is not None:
            self._backlight.set(not blank)

    def _deliver(self, command: str) -> None:  # on the loop
        if self.on_command is None:
            return
        try:
            self.on_command(command)
        except Exception:
            log.exception("command %s failed", command)
