"""What every back end the registry names can do: make itself from the config.

`settings(config)` is the keyword arguments of the back end's constructor, read from the
config: the one place that knows which keys a back end uses. `from_config(config, **overrides)`
makes it with them. A real camera also has `fallback_modes(settings)`: what to try, in order,
when it refuses its settings (`media/opening.py`).

A back end that feeds or reads the echo canceller's far-end reference (the ALSA speaker and
microphone) says so with `takes_echo_reference`; opening hands it the kiosk's one
EchoReference (media/echo_reference.py), an object the config cannot hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from ..config import Config


class ConfiguredBackend:
    """A mix-in for the back-end classes: `settings` says what they take from the config."""

    takes_echo_reference = False  # True: the constructor takes `echo_reference`

    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        raise NotImplementedError(f"{cls.__name__} does not say which settings it takes")

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> Self:
        return cls(**{**cls.settings(config), **overrides})
