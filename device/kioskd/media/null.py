"""Null sinks: drain the remote track and discard the frames (still counting them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import ConfiguredBackend
from .measure import MeasuringSink

if TYPE_CHECKING:
    from ..config import Config


class _NullSink(MeasuringSink, ConfiguredBackend):
    @classmethod
    def settings(cls, config: Config) -> dict[str, Any]:
        return {}  # nothing to set: it only drains and counts


class NullAudioSink(_NullSink):
    """Plays nothing. Drains the audio track so aiortc's queue does not grow."""


class NullVideoSink(_NullSink):
    """Shows nothing. Drains the video track so aiortc's queue does not grow."""
