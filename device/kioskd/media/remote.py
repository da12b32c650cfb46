"""Where one call's remote tracks go: the screen (or a null sink) and the speaker.

Every remote track is drained, even audio with no speaker: aiortc's receive queues are
unbounded. A speaker that cannot be had (a missing back end, a busy device) costs the call
its sound, never the call: its audio is drained by the call's sink instead, and the problem is
recorded under "audio.sink". Once `close()`d, tracks that still arrive are not drained: they
belong to a connection that is closed, and every task this object started has been awaited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from ..config import Config
from ..tasks import TaskSet
from . import opening
from .echo_reference import EchoReference
from .measure import MeasuringSink
from .problems import Problems

log = logging.getLogger(__name__)


class RemoteMedia:
    def __init__(self, call_id: str, config: Config, new_sink: Callable[[], MeasuringSink],
                 problems: Problems, echo_reference: EchoReference | None = None) -> None:
        self.call_id = call_id
        self._echo_reference = echo_reference  # the speaker writes what it plays into it
        self._config = config
        self._new_sink = new_sink
        self._problems = problems
        self.sink: Any = None  # drains and counts everything; shows video when there is a screen
        self.speaker: Any = None  # plays the caller's audio when audio.sink is not "null"
        self.packets_lost: int | None = None  # from the far end's receiver reports
        self.rtt_ms: float | None = None
        self._tasks = TaskSet(f"call {call_id} media")
        self._closed = False

    def add(self, track: MediaStreamTrack) -> None:
        """A remote track arrived (aiortc's "track" event, inside setRemoteDescription): never
        raises, or the offer would be refused."""
        if self._closed:
            log.debug("call %s: %s track after the call's end: not drained", self.call_id,
                      track.kind)
            return
        if track.kind == "audio" and self._config.audio.sink != "null":
            speaker = self.speaker or self._open_speaker()
            if speaker is not None:
                speaker.add_track(track)
                log.info("call %s: receiving audio", self.call_id)
                return
        self._call_sink().add_track(track)
        log.info("call %s: receiving %s", self.call_id, track.kind)

    def _open_speaker(self) -> Any:
        try:
            self.speaker = opening.configured_speaker(self._config, self._echo_reference)
        except Exception as exc:
            self._no_speaker(f"audio.sink {self._config.audio.sink!r} cannot be used: {exc}")
            return None
        self._tasks.spawn(self._start_speaker(), name=f"call {self.call_id} speaker")
        return self.speaker

    async def _start_speaker(self) -> None:
        try:
            await self.speaker.start()
        except Exception as exc:
            tracks, self.speaker = self.speaker.tracks, None
            self._no_speaker(str(exc))
            for track in tracks:
                self._call_sink().add_track(track)
            return
        self._problems.clear("audio.sink")

    def _no_speaker(self, error: str) -> None:
        log.error("call %s: %s; the caller's audio is not played (still drained)",
                  self.call_id, error)
        self._problems.set("audio.sink", "failed", error)

    def _call_sink(self) -> Any:
        """The call's one draining sink, made and started on first use."""
        if self.sink is None:
            self.sink = self._new_sink()
            self._tasks.spawn(self.sink.start(), name=f"call {self.call_id} sink")
        return self.sink

    async def close(self) -> None:
        self._closed = True
        await self._tasks.cancel_all()
        for sink in (self.sink, self.speaker):
            if sink is None:
                continue
            try:
                await sink.stop()
            except Exception as exc:
                log.warning("call %s: stopping a sink: %r", self.call_id, exc)

    # -- what was received ------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """The status's media counts: frames, level, the speaker's own, loss and RTT."""
        counts = self.sink.stats() if self.sink is not None else {}
        if self.speaker is not None:
            speaker = self.speaker.stats()
            counts.update(audio_frames=speaker["audio_frames"],
                          audio_level_dbfs=speaker["audio_level_dbfs"], speaker=speaker)
        return {**counts, "packets_lost": self.packets_lost, "rtt_ms": self.rtt_ms}

    def summary(self) -> dict[str, Any]:
        """The call log's and metrics' media summary (calllog.MEDIA_KEYS)."""
        return {
            "frames_received": self.sink.video_frames if self.sink is not None else None,
            "frames_sent": None,  # the local tracks count them (LocalMedia.frames_sent)
            "packets_lost": self.packets_lost,
            "rtt_ms": self.rtt_ms,
        }
