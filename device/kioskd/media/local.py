"""The call's own camera and microphone: opened, fallen back, reopened, muted, turned off.

A missing or busy device must not cost the call: it goes on with what remains, and the
problem is recorded in `problems` (the log, `kioskctl status` and the screen read it there).
Devices are opened on a worker thread (blocking I/O, retried while busy, basic settings if the
configured ones are refused: media/opening.py). Each track is wrapped in a SwitchableTrack, so
that mute and camera-off send silence or black without renegotiating, and so that a device
lost mid-call can be opened again, with backoff, and carry on in the same call.

The rtc session asks `open(call, kind)` for a call's tracks; the call runner says when a call
begins (`begin`) and ends (`end`). Mute and camera-off are for one call: the next caller is
seen and heard again. The microphone is handed the kiosk's echo reference (what the speaker
plays), so that its processing stage can cancel the speaker's echo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from ..call.events import Call
from ..config import Config
from ..policy.backoff import Backoff
from ..tasks import TaskSet
from . import opening, registry
from .capture import DeviceUnavailable
from .echo_reference import EchoReference
from .problems import FALLBACK, Problems
from .shedding import FrameThinner, VideoShedding
from .switch import SwitchableTrack

log = logging.getLogger(__name__)

# A device lost mid-call is tried again after a random wait of up to 1 s, then 2, 4... 10 s.
REOPEN_BASE_S, REOPEN_CAP_S, REOPEN_MIN_S = 1.0, 10.0, 0.25

# The local sources by kind: their registry table, the config key, and the name people use.
SOURCES = {
    "video": (registry.VIDEO_SOURCES, "camera"),
    "audio": (registry.AUDIO_SOURCES, "microphone"),
}
DEVICE_NAMES = {table.setting: device for table, device in SOURCES.values()}
AUDIO_ONLY_KEY = "rtc.video_codecs"  # the problems map's key for a call without video codec


class LocalMedia:
    def __init__(self, config: Config, problems: Problems | None = None,
                 preview: Callable[[Any], None] | None = None,
                 echo_reference: EchoReference | None = None,
                 shedding: VideoShedding | None = None) -> None:
        self.config = config
        self.problems = problems if problems is not None else Problems()
        self.preview = preview  # sees every local video frame (the screen's picture-in-picture)
        self.echo_reference = echo_reference  # what the speaker plays, for the microphone
        self.shedding = shedding  # what video to leave out while the CPU is pressed
        self.off = {"audio": False, "video": False}  # muted / camera off, for this call
        self._call: Call | None = None
        self._tracks: dict[str, SwitchableTrack] = {}  # this call's tracks by kind
        self._peer_codecs: dict[str, Sequence[str] | None] = {}  # what each was opened for
        # The video tracks of the last call (all its connections), for frames_sent.
        self._sent: tuple[str | None, list[SwitchableTrack]] = (None, [])
        self._reopening = TaskSet("reopen")

    @property
    def tracks(self) -> dict[str, SwitchableTrack]:
        return dict(self._tracks)

    def audio_processing(self) -> dict[str, Any] | None:
        """The call's microphone processing stage's stats (media/processing.py); None when no
        call has a microphone with one (a synthetic source has none)."""
        track = self._tracks.get("audio")
        stage = getattr(track.source, "processing", None) if track is not None else None
        return stage.stats() if stage is not None else None

    # -- the call runner's side -------------------------------------------------------------

    def begin(self, call: Call) -> None:
        """`call` (or a new connection attempt of it) is the one whose tracks are opened now."""
        self._call = call
        if self._sent[0] != call.id:
            self._sent = (call.id, [])
            if self.shedding is not None:
                self.shedding.call_started()

    async def end(self, call: Call) -> None:
        """The call is over: stop reopening its devices, forget its mute and camera-off."""
        if self._call is not None and self._call.id != call.id:
            return
        self._call = None
        if self.shedding is not None:
            self.shedding.call_ended()
        self._tracks.clear()
        self._peer_codecs.clear()
        self.problems.clear(AUDIO_ONLY_KEY)
        await self._reopening.cancel_all()
        if any(self.off.values()):
            self.off = {"audio": False, "video": False}
            self._changed()

    # -- the rtc session's side -------------------------------------------------------------

    async def open(self, call: Call, kind: str,
                   peer_codecs: Sequence[str] | None = None) -> MediaStreamTrack | None:
        """The call's `kind` ("audio", "video") track, or None when the device can't be had.
        `peer_codecs`: the video codecs the peer takes, when known (media/opening.py)."""
        table, device = SOURCES[kind]
        key = table.setting
        try:
            opened = await asyncio.to_thread(opening.open_configured, table, self.config,
                                             echo_reference=self.echo_reference,
                                             peer_codecs=peer_codecs)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, DeviceUnavailable) else "failed"
            log.error("call %s: %s %r cannot be opened (%s): %s; the call goes on without the "
                      "kiosk's %s", call.id, key, self._name(key), reason, exc,
                      "picture" if kind == "video" else "sound")
            self.problems.set(key, reason, str(exc))
            return None
        if self._call is not call:  # the call ended, or was replaced, meanwhile
            opened.track.stop()
            return None
        self._opened(key, opened)
        track = SwitchableTrack(opened.track)
        track.off = self.off[kind]
        track.wait_for_replacement = True  # a device lost mid-call is opened again
        track.on_ended = lambda error: self._lost(call, track, key, error)
        self._peer_codecs[kind] = peer_codecs  # a reopened device must give the same codec
        if kind == "video":
            track.on_codec_refused = lambda codec: self._reencode(call, track, key, codec)
            if self.shedding is not None:
                track.thinner = FrameThinner(self.shedding, self.config.video.fps)
        if kind == "video" and self.preview is not None and self.config.display.preview:
            track.on_frame = self.preview
        self._tracks[kind] = track
        if kind == "video" and self._sent[0] == call.id:
            self._sent[1].append(track)
        return track

    def receive_video_bps(self) -> int | None:
        """The most video bitrate to ask the caller for while the CPU is pressed; None: any."""
        return self.shedding.level.receive_bps if self.shedding is not None else None

    def frames_sent(self, call: Call) -> int | None:
        """Video frames handed to the sender in `call`, over all its connections; None when
        it sent no video (the call log's frames_sent)."""
        call_id, tracks = self._sent
        return sum(t.frames_sent for t in tracks) if call_id == call.id and tracks else None

    def _name(self, key: str) -> str:
        section, _, name = key.partition(".")
        return str(getattr(getattr(self.config, section), name))

    def _opened(self, key: str, opened: opening.Opened) -> None:
        if opened.fallback:
            self.problems.set(key, FALLBACK, opened.fallback)
        else:
            self.problems.clear(key)

    def audio_only(self, call: Call, why: str) -> None:
        """The call's peer has no video codec in common with the kiosk: an audio call. The
        screen and `kioskctl status` say so until the call ends."""
        if self._is_current(call):
            self.problems.set(AUDIO_ONLY_KEY, FALLBACK, f"{why}: audio only")

    # -- mute and camera-off ----------------------------------------------------------------

    def set_off(self, kind: str, off: bool | None = None) -> bool:
        """Mute the microphone ("audio") or turn the camera off ("video"); None toggles.
        The call keeps its tracks: silence or black goes out, nothing is renegotiated."""
        off = (not self.off[kind]) if off is None else off
        self.off[kind] = off
        track = self._tracks.get(kind)
        if track is not None:
            track.off = off
        log.info("%s %s", "microphone" if kind == "audio" else "camera",
                 ("muted" if kind == "audio" else "off") if off else "on")
        self._changed()
        return off

    def _changed(self) -> None:
        if self.problems.on_change is not None:
            self.problems.on_change()

    # -- a device lost mid-call -------------------------------------------------------------

    def _lost(self, call: Call, track: SwitchableTrack, key: str, error: str) -> None:
        """The call goes on with what remains while the device is opened again; the log, the
        status and the screen say so."""
        if self._call is None or self._call.id != call.id:
            return
        device = DEVICE_NAMES[key]
        log.error("call %s: %s lost mid-call: %s; the call goes on without it%s", call.id,
                  device, error, " while it is opened again" if track.wait_for_replacement
                  else "")
        self.problems.set(key, "lost", f"{device} lost mid-call: {error}")
        if track.wait_for_replacement:
            self._reopening.spawn(self._reopen(call, track, key), name=f"reopen {key}")

    async def _reopen(self, call: Call, track: SwitchableTrack, key: str) -> None:
        """Open a lost device again, with backoff, until it works or the call ends; the track
        then carries on with it (an unplugged USB camera plugged back in)."""
        track.source.stop()  # let go of the device, so that it can be opened again
        table = SOURCES[track.kind][0]
        backoff = Backoff(base_s=REOPEN_BASE_S, cap_s=REOPEN_CAP_S)
        while self._is_current(call) and track.readyState == "live":
            await asyncio.sleep(max(REOPEN_MIN_S, backoff.next_delay()))  # a retry interval
            try:
                opened = await asyncio.to_thread(
                    opening.open_configured, table, self.config, budget_s=0,
                    echo_reference=self.echo_reference,
                    peer_codecs=self._peer_codecs.get(track.kind))
            except Exception as exc:
                log.debug("%s: not back yet: %s", key, exc)
                continue
            if self._swap_in(call, track, key, opened):
                log.info("call %s: %s is back", call.id, DEVICE_NAMES[key])
            return

    def _reencode(self, call: Call, track: SwitchableTrack, key: str, codec: str) -> None:
        """The far end chose `codec` over the camera's own H.264 (an answer to our offer):
        open the camera again for frames that aiortc encodes, and go on with them."""
        if not self._is_current(call):
            return
        self._peer_codecs[track.kind] = [codec]
        track.on_ended = None  # the source stopped on purpose: not a lost camera
        track.source.stop()
        self._reopening.spawn(self._open_for(call, track, key), name=f"reencode {key}")

    async def _open_for(self, call: Call, track: SwitchableTrack, key: str) -> None:
        table = SOURCES[track.kind][0]
        try:
            opened = await asyncio.to_thread(
                opening.open_configured, table, self.config,
                echo_reference=self.echo_reference, peer_codecs=self._peer_codecs[track.kind])
        except Exception as exc:
            log.error("call %s: the camera could not be opened again for %s: %s; the call goes "
                      "on without the kiosk's picture", call.id,
                      ", ".join(self._peer_codecs[track.kind] or ()), exc)
            self.problems.set(key, exc.reason if isinstance(exc, DeviceUnavailable)
                              else "failed", str(exc))
            track.wait_for_replacement = False
            track.stop()
            return
        self._swap_in(call, track, key, opened)

    def _swap_in(self, call: Call, track: SwitchableTrack, key: str,
                 opened: opening.Opened) -> bool:
        """The call's track goes on with the device opened again; False (and the device let
        go) if the call or the track ended meanwhile."""
        if not self._is_current(call) or track.readyState != "live":
            opened.track.stop()
            return False
        track.on_ended = lambda error: self._lost(call, track, key, error)
        track.replace_source(opened.track)
        self._opened(key, opened)
        return True

    def _is_current(self, call: Call) -> bool:
        return self._call is not None and self._call.id == call.id
