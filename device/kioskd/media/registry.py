"""Media back ends by name: a config value maps to "module:Class", imported on first use.

Only the selected back end's module is imported, so a module may import picamera2,
alsaaudio or pygame at its top and the daemon still runs on a machine without them.
Tests register fakes in the same tables with `register`.

A back end that needs a module which may not be installed says so next to its entry (a
`Requirement`); `config_issues(config, origins)` checks, when the config is loaded, that the
selected back ends are known and that what they need can be found, without importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.schema import ConfigIssue, did_you_mean

if TYPE_CHECKING:
    from ..config import Config


class UnknownBackend(ValueError):
    """A config names a back end no table knows. The message lists the known names."""


@dataclass(frozen=True)
class Requirement:
    """A module a back end imports that may not be installed, and how to install it."""

    module: str  # the import name, looked for (never imported) by config_issues
    install: str  # what the admin does about it


PYALSAAUDIO = Requirement(
    "alsaaudio", "install pyalsaaudio, the alsa extra: .venv/bin/pip install -c constraints.txt "
                 "'.[alsa]' (building it needs libasound2-dev: apt install libasound2-dev), or "
                 "pip install pyalsaaudio")
PICAMERA2 = Requirement(
    "picamera2", "apt install python3-picamera2 (Raspberry Pi OS), in a venv made with "
                 "python3 -m venv --system-site-packages so that it sees the package")


class BackendTable(dict[str, Any]):
    """Names to "module:Class" strings (or classes, once imported or registered), and what
    each name needs installed (`requires`)."""

    def __init__(self, setting: str, entries: dict[str, Any],
                 requires: dict[str, Requirement] | None = None) -> None:
        super().__init__(entries)
        self.setting = setting  # the config key it serves, for error messages
        self.requires = dict(requires or {})


VIDEO_SOURCES = BackendTable("video.source", {
    "synthetic": "kioskd.media.synthetic:SyntheticCamera",
    "picamera2": "kioskd.media.picamera2:Picamera2Camera",
    "v4l2": "kioskd.media.v4l2:V4l2Camera",
    "file": "kioskd.media.file:FileCamera",
}, requires={"picamera2": PICAMERA2})
AUDIO_SOURCES = BackendTable("audio.source", {
    "synthetic": "kioskd.media.synthetic:SyntheticTone",
    "alsa": "kioskd.media.alsa:AlsaMicrophone",
}, requires={"alsa": PYALSAAUDIO})
AUDIO_SINKS = BackendTable("audio.sink", {
    "null": "kioskd.media.null:NullAudioSink",
    "alsa": "kioskd.media.alsa:AlsaSpeaker",
}, requires={"alsa": PYALSAAUDIO})
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


def _unknown(table: dict[str, Any], name: str) -> str:
    setting = getattr(table, "setting", "back end")
    known = ", ".join(sorted(table)) or "(none)"
    return f'unknown {setting} "{name}"{did_you_mean(name, table)}; known: {known}'


def resolve(table: dict[str, Any], name: str) -> Any:
    """The class registered under `name`, importing its module the first time."""
    try:
        target = table[name]
    except KeyError:
        raise UnknownBackend(_unknown(table, name)) from None
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


# -- the config's check -----------------------------------------------------------------------

# The tables whose names the config chooses (display.mode's are the screen's: kioskd.ui).
CONFIGURED_TABLES = (VIDEO_SOURCES, AUDIO_SOURCES, AUDIO_SINKS)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: imported already (a stand-in)
        return True
    except ImportError:
        return False


def config_issues(config: Config, origins: Mapping[str, str]) -> list[ConfigIssue]:
    """What stops the back ends `config` selects from being had: an unknown name, or a
    module one needs that is not installed. `origins`: dotted key -> where its value came
    from (a file, "--set", "defaults"). Finds modules without importing them."""
    issues = []
    for table in CONFIGURED_TABLES:
        name = configured_name(table, config)
        source = origins.get(table.setting, "defaults")
        if name not in table:
            issues.append(ConfigIssue(source, table.setting, _unknown(table, name)))
            continue
        need = table.requires.get(name)
        if need is not None and not _installed(need.module):
            issues.append(ConfigIssue(source, table.setting, (
                f'{table.setting} "{name}" needs the Python module {need.module}, which is '
                f"not installed: {need.install}")))
    return issues
