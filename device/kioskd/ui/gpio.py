"""Physical push buttons on the Pi's GPIO header, through gpiozero.

Each button is wired between its GPIO pin (BCM numbering) and ground; the pin's internal
pull-up holds it high, so pressed reads low. gpiozero debounces in software and calls back
from its own thread: `on_press` must hand the command on (KioskScreen.press puts it in a slot
for the render thread, which posts it to the asyncio loop), never touch app state itself.

Only this module imports gpiozero, and only when a pin is configured, so a kiosk without
buttons (or a laptop) never needs it. Tests pass gpiozero's MockFactory as `pin_factory`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

BOUNCE_S = 0.05  # contact bounce of a typical arcade or tactile button is well under this
BCM_PINS = range(0, 28)  # the 40-pin header's GPIO0..GPIO27


class GpioError(RuntimeError):
    """The buttons could not be set up: bad pin numbers, no gpiozero, no pin library."""


def configured_pins(pins: Mapping[str, int | None]) -> dict[str, int]:
    """{command: BCM pin} without the unused (-1 or None) ones; GpioError on a bad pin.

    One pin per command and one command per pin.
    """
    used: dict[str, int] = {}
    for command, pin in pins.items():
        if pin is None or pin < 0:
            continue
        if pin not in BCM_PINS:
            raise GpioError(f"GPIO pin {pin} for {command} is not a BCM pin number 0-27")
        clash = next((other for other, p in used.items() if p == pin), None)
        if clash is not None:
            raise GpioError(f"GPIO pin {pin} is configured for both {clash} and {command}")
        used[command] = pin
    return used


class GpioButtons:
    """Push buttons that call `on_press(command)` when pressed.

    `pins` maps commands ("answer", "hangup", "call", ...) to BCM pin numbers; -1 or None
    leaves a command without a button. `pin_factory` is gpiozero's (None: its default, which
    on a Pi is lgpio or RPi.GPIO).
    """

    def __init__(
        self,
        pins: Mapping[str, int | None],
        on_press: Callable[[str], None],
        *,
        bounce_s: float = BOUNCE_S,
        pin_factory: Any = None,
    ) -> None:
        self.pins = configured_pins(pins)
        self.presses = 0
        self._on_press = on_press
        self._buttons: list[Any] = []
        if not self.pins:
            return
        try:
            from gpiozero import Button
        except ImportError as exc:
            raise GpioError("GPIO buttons are configured but gpiozero is not installed "
                            "(pip install gpiozero, or apt install python3-gpiozero)") from exc
        try:
            for command, pin in self.pins.items():
                button = Button(pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory)
                button.when_pressed = self._handler(command, pin)
                self._buttons.append(button)
        except Exception as exc:
            self.close()
            raise GpioError(f"cannot use the GPIO buttons: {exc}") from exc
        log.info("GPIO buttons: %s",
                 ", ".join(f"{command} on GPIO{pin}" for command, pin in self.pins.items()))

    def _handler(self, command: str, pin: int) -> Callable[[], None]:
        def pressed() -> None:  # runs in gpiozero's thread
            self.presses += 1
            log.debug("GPIO%d pressed: %s", pin, command)
            try:
                self._on_press(command)
            except Exception:
                log.exception("GPIO button %s: handing on the press failed", command)

        return pressed

    def close(self) -> None:
        buttons, self._buttons = self._buttons, []
        for button in buttons:
            try:
                button.close()
            except Exception as exc:  # closing must not stop the daemon's cleanup
                log.warning("closing a GPIO button: %r", exc)
