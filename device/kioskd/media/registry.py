"""Media back ends by name: a config value maps to "module:Class", imported on first use.

Only the selected back end's module is imported, so a module may import picamera2,
alsaaudio or pygame at its top and the daemon still runs on a machine without them.
Tests register fakes in the same tables with `register`.
"""

from __future__ import annotations

import importlib
from typing import Any


class UnknownBackend(ValueError):
    """A config names a back end no table knows. The message lists the known names."""


class BackendTable(dict[str, Any]):
    """Names to "module:Class" strings (or classes, once imported or registered)."""

    def __init__(self, setting: str, entries: dict[str, Any]) -> None:
        super().__init__(entries)
        self.setting = setting  # the config key it serves, for error messages


VIDEO_SOURCES = BackendTable("video.source", {
    "synthetic": "kioskd.media.synthetic:SyntheticCamera",
    "picamera2": "kioskd.media.picamera2:Picamera2Camera",
    "v4l2": "kioskd.media.v4l2:V4l2Camera",
    "file": "kioskd.media.file:FileCamera",
})
AUDIO_SOURCES = BackendTable("audio.source", {
    "synthetic": "kioskd.media.synthetic:SyntheticTone",
    "alsa": "kioskd.media.alsa:AlsaMicrophone",
})
AUDIO_SINKS = BackendTable("audio.sink", {
    "null": "kioskd.media.null:NullAudioSink",
    "alsa": "kioskd.media.alsa:AlsaSpeaker",
})
# The caller's video goes to the kiosk screen (kioskd.ui) when display.mode shows one; this
# is what drains and counts it otherwise.
VIDEO_SINKS = BackendTable("display.mode", {"none": "kioskd.media.null:NullVideoSink"})


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f'back end target "{target}" is not of the form "module:Class"')
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"module {module_name} has no {attribute}") from None


def resolve(table: dict[str, Any], name: str) -> Any:
    """The class registered under `name`, importing its module the first time."""
    try:
        target = table[name]
    except KeyError:
        setting = getattr(table, "setting", "back end")
        known = ", ".join(sorted(table)) or "(none)"
        raise UnknownBackend(f'unknown {setting} "{name}"; known: {known}') from None
    # importlib caches the module; the table keeps the string so it stays readable.
    return _import(target) if isinstance(target, str) else target


def configured_name(table: BackendTable, config: Any) -> str:
    """The back end `config` selects in `table`: the value of its key (table.setting)."""
    section, _, key = table.setting.partition(".")
    return str(getattr(getattr(config, section), key))


def register(table: dict[str, Any], name: str, target: str | type) -> None:
    """Add or replace a back end: a "module:Class" string (imported lazily) or a class."""
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f'back end target "{target}" is not of the form "module:Class"')
    table[name] = target
