"""Null sinks: drain the remote track and discard the frames (still counting them)."""

from __future__ import annotations

from .measure import MeasuringSink


class NullAudioSink(MeasuringSink):
    """Plays nothing. Drains the audio track so aiortc's queue does not grow."""


class NullVideoSink(MeasuringSink):
    """Shows nothing. Drains the video track so aiortc's queue does not grow."""
