"""Composition root: config -> objects -> run -> cleanup.

Every input (signaling messages, local commands, rtc results, timers) becomes an event on one
queue; one dispatcher feeds them to the call machine in order and carries out its effects. Slow
rtc work (ICE gathering, DTLS) runs in tasks that report back as events, so a hang-up is never
stuck behind a connection that is still being built.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack

from . import protocol
from .call import events as ev
from .calllog import CallLog, CallRecorder, default_path
from .call.machine import CallMachine, Timeouts
from .call.states import State
from .config import Config
from .health import Notifier, status_line, watchdog_loop
from .media import opening, registry
from .media.capture import DeviceUnavailable
from .media.switch import SwitchableTrack
from .memory import release_free_memory
from .metrics import KioskMetrics, MetricsServer
from .policy.answer import AnswerPolicy
from .policy.backoff import Backoff
from .rtc.session import MediaPlan, RtcError, RtcSession
from .signaling.client import SignalingClient

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 1024  # far above any real call's burst; a flood is dropped, not queued
RTC_STATS_INTERVAL_S = 2.0  # how often a call's packet loss and RTT are sampled
# The "connecting" screen waits this long: drawing it holds the GIL while the answer and the
# DTLS handshake run (3-4 ms of set-up on a loopback call), and a connection that is quicker
# than this goes straight from the last screen to the call's without a flash in between.
CONNECTING_SCREEN_DELAY_S = 0.2
# Memory goes back to the system once the kiosk has been idle this long after a call: the
# collection holds the GIL for tens of ms, which a call coming right after must not wait for.
MEMORY_TRIM_DELAY_S = 1.0
# A device lost mid-call is tried again after a random wait of up to 1 s, then 2, 4... 10 s.
REOPEN_BASE_S, REOPEN_CAP_S, REOPEN_MIN_S = 1.0, 10.0, 0.25

# The local sources, by config key: the name the screen and the log give each.
MEDIA_DEVICES = {"video.source": "camera", "audio.source": "microphone"}
# A device error's reason (media.capture.REASONS, and "lost" mid-call) as the error screen
# says it: "Camera busy: ...".
PROBLEM_WORDS = {"missing": "missing", "busy": "busy", "unsupported": "refused its settings",
                 "denied": "not allowed", "failed": "failed", "lost": "lost"}


@dataclass
class Reopen:
    """How to open a call's camera or microphone again if it is lost mid-call."""

    call: ev.Call
    key: str  # the config key: "video.source", "audio.source"
    name: str  # for the log: "video.source 'v4l2'"
    factory: Any
    modes: list[dict[str, Any]]


@dataclass
class CallMedia:
    """Where one call's remote tracks go: a single sink drains them all (and counts them)."""

    sink: Any = None  # drains and counts everything; shows video when there is a screen
    speaker: Any = None  # plays the caller's audio when audio.sink is not "null"
    packets_lost: int | None = None  # from the far end's receiver reports
    rtt_ms: float | None = None

    def counts(self) -> dict[str, Any]:
        counts = self.sink.stats() if self.sink is not None else {}
        if self.speaker is not None:
            speaker = self.speaker.stats()
            counts.update(audio_frames=speaker["audio_frames"],
                          audio_level_dbfs=speaker["audio_level_dbfs"], speaker=speaker)
        return {**counts, "packets_lost": self.packets_lost, "rtt_ms": self.rtt_ms}

    def sinks(self) -> list[Any]:
        return [s for s in (self.sink, self.speaker) if s is not None]

    def summary(self) -> dict[str, Any]:
        """The call log's and metrics' media summary (calllog.MEDIA_KEYS)."""
        return {
            "frames_received": self.sink.video_frames if self.sink is not None else None,
            "frames_sent": None,  # aiortc counts packets, not frames, on the sending side
            "packets_lost": self.packets_lost,
            "rtt_ms": self.rtt_ms,
        }


def ice_servers_of(config: Config) -> list[RTCIceServer]:
    # Exactly the configured servers: aiortc adds a public STUN server when given None.
    return [RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in config.rtc.ice_servers]


class KioskApp:
    def __init__(self, config: Config, token: str) -> None:
        self.config = config
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.machine = CallMachine(
            AnswerPolicy(config.answer.mode, tuple(config.answer.allow), config.answer.delay_s),
            Timeouts(config.call.ring_timeout_s, config.call.connect_timeout_s,
                     config.call.disconnect_grace_s),
            on_change=self._state_changed,
        )
        self.signaling = SignalingClient(
            config.signaling.url, token, self.post,
            on_status=self._signaling_status,
            verify_tls=config.signaling.verify_tls,
            connect_timeout_s=config.signaling.connect_timeout_s,
        )
        self.state_changed = asyncio.Condition()
        self.notifier = Notifier()
        self.metrics = KioskMetrics()
        self.metrics.registry.add_collector(
            lambda: self.metrics.reconnects.set_total(self.signaling.reconnects))
        self.calls: CallRecorder | None = None  # opened by run()
        self.media_errors: dict[str, str] = {}  # config key -> the last device error
        self._media_reasons: dict[str, str] = {}  # config key -> that error's reason
        self.media_notices: dict[str, str] = {}  # config key -> a fallback in use
        self.mic_muted = False
        self.camera_off = False
        self.screen: Any = None  # the kiosk's screen (ui.KioskScreen) when display.mode shows one
        self._last_outcome: tuple[str, str, float] | None = None  # (outcome, peer name, monotonic)
        self._ringing_since = 0.0
        self._switches: dict[str, SwitchableTrack] = {}  # this call's local tracks by kind
        self._metrics_server: MetricsServer | None = None
        self.media = CallMedia()
        self.last_call: dict[str, Any] = {}
        self.calls_finished = 0
        self._session: RtcSession | None = None
        self._session_call: ev.Call | None = None
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._deferred_view: asyncio.TimerHandle | None = None
        self._memory_trim: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ice_servers = ice_servers_of(config)

    # -- inputs ------------------------------------------------------------------------------

    def post(self, event: ev.Event) -> None:
        """Queue an event for the machine; safe from any callback on the loop."""
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event queue full: dropped %s", type(event).__name__)

    def _state_changed(self, old: State, new: State, call: ev.Call | None) -> None:
        if new is State.RINGING:
            self._ringing_since = time.monotonic()
        if self.calls is not None:
            self.calls.state_changed(new.value, call)
        self.metrics.state_changed(new.value)
        self._report_status()
        if self._deferred_view is not None:
            self._deferred_view.cancel()
            self._deferred_view = None
        if new is State.CONNECTING:
            self._deferred_view = asyncio.get_running_loop().call_later(
                CONNECTING_SCREEN_DELAY_S, self._update_view)
        else:
            self._update_view()
        self._spawn(self._notify_state())

    def _report_status(self) -> None:
        call = self.machine.call
        peer = (call.peer_name or str(call.peer)) if call else ""
        self.notifier.status(status_line(self.machine.state.value, self.signaling.status, peer))

    async def _notify_state(self) -> None:
        async with self.state_changed:
            self.state_changed.notify_all()

    def _signaling_status(self, status: str) -> None:
        self._report_status()
        self._update_view()
        self._spawn(self._notify_state())

    async def wait_for_state(self, state: State, timeout: float = 10.0) -> None:
        """For tests and tools: wait until the machine is in `state`."""
        async with self.state_changed:
            await asyncio.wait_for(
                self.state_changed.wait_for(lambda: self.machine.state is state), timeout)

    # -- the dispatcher ----------------------------------------------------------------------

    async def dispatch_forever(self) -> None:
        while True:
            event = await self.events.get()
            try:
                effects = self.machine.handle(event, time.time())
            except Exception:  # a bug must not take the kiosk off the air
                log.exception("call machine failed on %s", type(event).__name__)
                continue
            for effect in effects:
                try:
                    self._execute(effect)
                except Exception:
                    log.exception("effect %s failed", type(effect).__name__)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # -- effects -----------------------------------------------------------------------------

    def _execute(self, effect: ev.Effect) -> None:
        if isinstance(effect, ev.Send):
            self._spawn(self.signaling.send(effect.message))
        elif isinstance(effect, ev.AcceptOffer):
            session = self._open_session(effect.call)
            self._spawn(self._accept(session, effect))
        elif isinstance(effect, ev.CreateOffer):
            session = self._open_session(effect.call)
            self._spawn(self._offer(session, effect.call))
        elif isinstance(effect, ev.ApplyAnswer):
            if self._session is not None:
                self._spawn(self._apply_answer(self._session, effect))
        elif isinstance(effect, ev.AddCandidate):
            if self._session is not None:
                self._spawn(self._session.add_candidate(effect.candidate))
        elif isinstance(effect, ev.StartTimer):
            self._start_timer(effect)
        elif isinstance(effect, ev.CancelTimer):
            handle = self._timers.pop((effect.name, effect.call_id), None)
            if handle:
                handle.cancel()
        elif isinstance(effect, ev.Release):
            self._spawn(self._release(effect.call))
        elif isinstance(effect, ev.Finished):
            self._finished(effect)

    def _start_timer(self, effect: ev.StartTimer) -> None:
        key = (effect.name, effect.call_id)
        if key in self._timers:
            self._timers.pop(key).cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(
            effect.delay_s, self.post, ev.TimerFired(effect.name, effect.call_id))

    def _open_session(self, call: ev.Call) -> RtcSession:
        """A new peer connection for this attempt; a replaced one is closed behind it."""
        old = self._session
        if old is not None:
            self._spawn(old.close())
        self.media = CallMedia()
        media = self.media
        plan = MediaPlan(
            audio_source=lambda: self._audio_source(call),
            video_source=(lambda: self._video_source(call)) if call.call_type == "video"
            else None,
            on_remote_track=lambda track: self._remote_track(media, call, track),
            video_codecs=self.config.rtc.video_codecs,
            ice_servers=self._ice_servers,
        )
        session = RtcSession(
            call.id, plan,
            on_state=lambda state: self.post(ev.MediaState(call.id, call.attempt, state)))
        self._session, self._session_call = session, call
        self._spawn(self._sample_rtc_stats(session, call, media))
        return session

    async def _sample_rtc_stats(self, session: RtcSession, call: ev.Call,
                                media: CallMedia) -> None:
        """Packet loss and RTT from aiortc's stats, while this connection is the call's."""
        while self._session is session:
            await asyncio.sleep(RTC_STATS_INTERVAL_S)  # a sampling period, not a wait on work
            if self._session is not session:
                return
            try:
                report = await session.pc.getStats()
            except Exception as exc:
                log.debug("call %s: stats: %r", call.id, exc)
                continue
            remote = [s for s in report.values() if s.type == "remote-inbound-rtp"]
            if remote:
                media.packets_lost = sum(s.packetsLost or 0 for s in remote)
                rtts = [s.roundTripTime for s in remote if s.roundTripTime is not None]
                media.rtt_ms = round(max(rtts) * 1000, 1) if rtts else media.rtt_ms
            self.metrics.media(call.id, media.summary())

    async def _audio_source(self, call: ev.Call) -> MediaStreamTrack | None:
        audio = self.config.audio
        options: dict[str, Any] = {"frequency": audio.tone_hz} if audio.source == "synthetic" \
            else {"device": audio.capture_device} if audio.source == "alsa" else {}
        return await self._open_source(call, registry.AUDIO_SOURCES, audio.source, [options])

    async def _video_source(self, call: ev.Call) -> MediaStreamTrack | None:
        video = self.config.video
        options: dict[str, Any] = {"width": video.width, "height": video.height,
                                   "fps": video.fps}
        if video.source == "picamera2":
            options.update(encode=video.encoder, bitrate=video.bitrate_kbps * 1000 or None)
        elif video.source == "v4l2":
            options.update(device=video.device, input_format=video.input_format)
        elif video.source == "file":
            options.update(path=video.file)
        modes = [options]
        if video.source in ("picamera2", "v4l2"):  # real cameras: basic settings may still do
            modes += opening.basic_modes(options)
        return await self._open_source(call, registry.VIDEO_SOURCES, video.source, modes)

    async def _open_source(self, call: ev.Call, table: Any, name: str,
                           modes: list[dict[str, Any]]) -> MediaStreamTrack | None:
        """A missing or busy device must not cost the call: it goes on with what remains.

        The device is opened on a worker thread (blocking I/O, retried while busy, basic
        settings if the configured ones are refused: media/opening.py); the track is wrapped
        and recorded here, on the loop."""
        key = table.setting
        device = MEDIA_DEVICES[key]
        try:
            opened = await asyncio.to_thread(
                lambda: opening.open_device(registry.resolve(table, name), modes,
                                            f"{key} {name!r}"))
        except Exception as exc:
            reason = exc.reason if isinstance(exc, DeviceUnavailable) else "failed"
            log.error("call %s: %s %r cannot be opened (%s): %s; the call goes on without the "
                      "kiosk's %s", call.id, key, name, reason, exc,
                      "picture" if device == "camera" else "sound")
            self.media_notices.pop(key, None)
            self._media_problem(key, reason, str(exc))
            return None
        if self._session_call is not call:  # the call ended, or was replaced, meanwhile
            opened.track.stop()
            return None
        self._media_problem(key, None)
        if opened.fallback:
            self.media_notices[key] = opened.fallback
        else:
            self.media_notices.pop(key, None)
        track = SwitchableTrack(opened.track)
        track.off = self.mic_muted if track.kind == "audio" else self.camera_off
        track.wait_for_replacement = True  # a device lost mid-call is opened again
        reopen = Reopen(call, key, f"{key} {name!r}", registry.resolve(table, name), modes)
        track.on_ended = lambda error: self._source_ended(track, reopen, error)
        if track.kind == "video" and self.screen is not None and self.config.display.preview:
            track.on_frame = self.screen.show_preview  # the picture-in-picture
        self._switches[track.kind] = track
        return track

    def _source_ended(self, track: SwitchableTrack, reopen: Reopen, error: str) -> None:
        """A camera or microphone failed during the call: the call goes on with what remains
        while the device is opened again; say so in the log, status and screen."""
        if self._session_call is not reopen.call:
            return
        device = MEDIA_DEVICES[reopen.key]
        log.error("call %s: %s lost mid-call: %s; the call goes on without it%s",
                  reopen.call.id, device, error,
                  " while it is opened again" if track.wait_for_replacement else "")
        self._media_problem(reopen.key, "lost", f"{device} lost mid-call: {error}")
        self._spawn(self._notify_state())
        if track.wait_for_replacement:
            self._spawn(self._reopen(track, reopen))

    async def _reopen(self, track: SwitchableTrack, reopen: Reopen) -> None:
        """Open a lost device again, with backoff, until it works or the call ends; the
        track then carries on with it (an unplugged USB camera plugged back in)."""
        track.source.stop()  # let go of the device, so that it can be opened again
        backoff = Backoff(base_s=REOPEN_BASE_S, cap_s=REOPEN_CAP_S)
        while self._session_call is reopen.call and track.readyState == "live":
            await asyncio.sleep(max(REOPEN_MIN_S, backoff.next_delay()))  # a retry interval
            if self._session_call is not reopen.call or track.readyState != "live":
                return
            try:
                opened = await asyncio.to_thread(opening.open_device, reopen.factory,
                                                 reopen.modes, reopen.name, budget_s=0)
            except Exception as exc:
                log.debug("%s: not back yet: %s", reopen.name, exc)
                continue
            if self._session_call is not reopen.call or track.readyState != "live":
                opened.track.stop()
                return
            track.on_ended = lambda error: self._source_ended(track, reopen, error)
            track.replace_source(opened.track)
            log.info("call %s: %s is back", reopen.call.id, MEDIA_DEVICES[reopen.key])
            if opened.fallback:
                self.media_notices[reopen.key] = opened.fallback
            self._media_problem(reopen.key, None)
            self._spawn(self._notify_state())
            return

    def _media_problem(self, key: str, reason: str | None, text: str = "") -> None:
        """Record (or, with reason None, clear) a local source's problem; the screen shows it."""
        before = self.media_errors.get(key), self._media_reasons.get(key)
        if reason is None:
            self.media_errors.pop(key, None)
            self._media_reasons.pop(key, None)
        else:
            self.media_errors[key], self._media_reasons[key] = text, reason
        # Redraw only for news: a redraw while the answer is being built slows it (the GIL).
        if (self.media_errors.get(key), self._media_reasons.get(key)) != before:
            self._update_view()

    def _media_warnings(self, call: ev.Call | None) -> tuple[str, ...]:
        """Short words for the in-call screen: what this call goes without, or makes do with."""
        if call is None:
            return ()
        keys = ["video.source", "audio.source"] if call.call_type == "video" \
            else ["audio.source"]
        warnings = []
        for key in keys:
            device, reason = MEDIA_DEVICES[key], self._media_reasons.get(key)
            if reason in ("busy", "lost"):
                warnings.append(f"{device.capitalize()} {reason}")
            elif reason is not None:
                warnings.append(f"No {device}")
            elif key in self.media_notices:
                warnings.append(f"Basic {device} settings")
        return tuple(warnings)

    def set_muted(self, kind: str, off: bool | None = None) -> bool:
        """Mute the microphone ("audio") or turn the camera off ("video"); None toggles.
        The call keeps its tracks: silence or black goes out, nothing is renegotiated."""
        current = self.mic_muted if kind == "audio" else self.camera_off
        off = (not current) if off is None else off
        if kind == "audio":
            self.mic_muted = off
        else:
            self.camera_off = off
        switch = self._switches.get(kind)
        if switch is not None:
            switch.off = off
        log.info("%s %s", "microphone" if kind == "audio" else "camera",
                 ("muted" if kind == "audio" else "off") if off else "on")
        self._update_view()
        self._spawn(self._notify_state())
        return off

    def _new_sink(self) -> Any:
        if self.screen is not None:
            from .ui import make_video_sink

            return make_video_sink(self.screen)
        return registry.resolve(registry.VIDEO_SINKS, "none")()

    def _remote_track(self, media: CallMedia, call: ev.Call, track: MediaStreamTrack) -> None:
        # Always drained, even audio with a null sink: aiortc's receive queues are unbounded.
        if track.kind == "audio" and self.config.audio.sink != "null":
            if media.speaker is None:
                audio = self.config.audio
                media.speaker = registry.resolve(registry.AUDIO_SINKS, audio.sink)(
                    device=audio.playback_device, buffer_ms=audio.playout_buffer_ms,
                    max_buffer_ms=audio.max_playout_ms)
                self._spawn(self._start_speaker(media))
            media.speaker.add_track(track)
        else:
            self._call_sink(media).add_track(track)
        log.info("call %s: receiving %s", call.id, track.kind)

    async def _start_speaker(self, media: CallMedia) -> None:
        try:
            await media.speaker.start()
        except Exception as exc:
            log.error("%s; the caller's audio is not played (still drained)", exc)
            self.media_errors["audio.sink"] = str(exc)
            tracks, media.speaker = media.speaker.tracks, None
            for track in tracks:
                self._call_sink(media).add_track(track)

    def _call_sink(self, media: CallMedia) -> Any:
        """The call's one draining sink, made and started on first use. Its start cannot fail
        for want of a screen: the screen is opened once, at start-up (_open_screen)."""
        if media.sink is None:
            media.sink = self._new_sink()
            self._spawn(media.sink.start())
        return media.sink

    async def _accept(self, session: RtcSession, effect: ev.AcceptOffer) -> None:
        call = effect.call
        try:
            answer = await session.accept(effect.offer, effect.candidates)
        except RtcError as exc:
            self.post(ev.RtcFailed(call.id, call.attempt, str(exc)))
            return
        except Exception as exc:
            log.exception("call %s: answering failed", call.id)
            self.post(ev.RtcFailed(call.id, call.attempt, repr(exc)))
            return
        self.post(ev.LocalDescription(call.id, call.attempt, answer))

    async def _offer(self, session: RtcSession, call: ev.Call) -> None:
        try:
            offer = await session.offer(call.call_type)
        except RtcError as exc:
            self.post(ev.RtcFailed(call.id, call.attempt, str(exc)))
            return
        except Exception as exc:
            log.exception("call %s: creating the offer failed", call.id)
            self.post(ev.RtcFailed(call.id, call.attempt, repr(exc)))
            return
        self.post(ev.LocalDescription(call.id, call.attempt, offer))

    async def _apply_answer(self, session: RtcSession, effect: ev.ApplyAnswer) -> None:
        call = effect.call
        try:
            await session.apply_answer(effect.answer)
        except Exception as exc:
            self.post(ev.RtcFailed(call.id, call.attempt, str(exc)))

    async def _release(self, call: ev.Call) -> None:
        # Mute and camera-off are for one call: the next caller is seen and heard again.
        self._switches.clear()
        self.mic_muted = self.camera_off = False
        for key in [k for k in self._timers if k[1] == call.id]:
            self._timers.pop(key).cancel()
        session, self._session = self._session, None
        self._session_call = None
        if session is not None:
            await session.close()
        await self._stop_sink(self.media)
        self.post(ev.Released(call.id))
        # Between calls, so that hundreds of calls do not creep up the resident memory.
        if self._memory_trim is not None:
            self._memory_trim.cancel()
        self._memory_trim = asyncio.get_running_loop().call_later(
            MEMORY_TRIM_DELAY_S, self._trim_memory_if_idle)

    def _trim_memory_if_idle(self) -> None:
        self._memory_trim = None
        if self.machine.state is State.IDLE:  # else the end of this call will ask again
            self._spawn(asyncio.to_thread(release_free_memory))

    async def _stop_sink(self, media: CallMedia) -> None:
        for sink in media.sinks():
            try:
                await sink.stop()
            except Exception as exc:
                log.warning("stopping a sink: %r", exc)

    def _finished(self, effect: ev.Finished) -> None:
        call = effect.call
        own_media = self._session_call is not None and self._session_call.id == call.id
        summary = self.media.summary() if own_media else None
        if self.calls is not None:
            self.calls.finished(effect, summary)
        self.metrics.call_finished(effect, summary)
        self.calls_finished += 1
        self.last_call = {
            "call_id": call.id,
            "peer": call.peer,
            "peer_name": call.peer_name,
            "direction": call.direction,
            "type": call.call_type,
            "outcome": effect.outcome,
            "reason": effect.reason,
            "duration_s": round(effect.ended_at - call.connected_at, 1)
            if call.connected_at else 0.0,
            # offer received (or sent) -> media connected, as the kiosk's clock saw it
            "setup_ms": round((call.connected_at - call.started_at) * 1000, 1)
            if call.connected_at else None,
            "media": self.media.counts() if own_media else {},
        }
        if effect.outcome not in ("busy", "refused") or own_media:
            # A caller refused while another call goes on is not news for the screen.
            self._last_outcome = (effect.outcome, call.peer_name or str(call.peer),
                                  time.monotonic())
        log.info("call %s with %s (%s) ended: %s (%s)", call.id, call.peer,
                 call.peer_name or "?", effect.outcome, effect.reason)

    # -- the screen ---------------------------------------------------------------------------

    def _update_view(self) -> None:
        if self.screen is None:
            return
        from .ui import View

        machine, config, call = self.machine, self.config, self.machine.call
        outcome = self._last_outcome if machine.state is State.IDLE else None
        delay = config.answer.delay_s if config.answer.mode != "manual" else 0.0
        ringing = machine.state is State.RINGING
        self.screen.update(View(
            state=machine.state.value,
            kiosk_name=config.kiosk.name,
            online=self.signaling.status == "online",
            signaling_status=self.signaling.status,
            signaling_url=config.signaling.url,
            peer_name=(call.peer_name or str(call.peer)) if call else
            (outcome[1] if outcome else ""),
            call_type=call.call_type if call else "video",
            direction=call.direction if call else "incoming",
            answer_mode=config.answer.mode,
            auto_answer_at=self._ringing_since + delay if ringing and delay else None,
            connected_since=None if call is None or call.connected_at is None
            else time.monotonic() - (time.time() - call.connected_at),
            mic_muted=self.mic_muted,
            camera_off=self.camera_off,
            last_outcome=outcome[0] if outcome else None,
            last_outcome_at=outcome[2] if outcome else None,
            error=self._admin_error(),
            contact_name=config.call.contact,
            media_warnings=self._media_warnings(call),
        ))

    def _admin_error(self) -> str | None:
        """What an admin must fix, as the error screen says it (None: nothing)."""
        if self.signaling.status == "unauthorized":
            return ("The signaling server refused this kiosk's token. Check "
                    "signaling.token_file, then restart kioskd.")
        for key, device in MEDIA_DEVICES.items():
            if key not in self.media_errors:
                continue
            reason, error = self._media_reasons.get(key, "failed"), self.media_errors[key]
            if reason == "lost":  # the error already says "camera lost mid-call: ..."
                return f"{error[0].upper()}{error[1:]}. Check {key} and the cable."
            cable = " and the cable" if reason in ("missing", "failed") else ""
            return f"{device.capitalize()} {PROBLEM_WORDS[reason]}: {error}. Check {key}{cable}."
        return None

    def on_command(self, command: str) -> None:
        """A touch, key or GPIO button (on the loop): answer, decline, hangup, call, mute_mic,
        camera_off."""
        if command == "answer":
            self.post(ev.AnswerCall())
        elif command == "decline":
            self.post(ev.Decline())
        elif command == "hangup":
            self.post(ev.Hangup())
        elif command == "call":
            try:
                self.place_call()
            except ValueError as exc:
                log.warning("call button: %s", exc)
        elif command == "mute_mic":
            self.set_muted("audio")
        elif command == "camera_off":
            self.set_muted("video")
        else:
            log.warning("unknown screen command %r", command)

    async def _open_screen(self) -> asyncio.Task | None:
        """The kiosk's screen, for the daemon's whole life; None when headless or it fails."""
        if self.config.display.mode == "none":
            return None
        from .ui import KioskScreen

        screen = KioskScreen.from_config(self.config, self.on_command)
        try:
            await screen.start()
        except Exception as exc:
            # No screen must not mean no calls: answer them headless, and say why.
            log.error("%s; kioskd runs without a screen", exc)
            self.media_errors["display.mode"] = str(exc)
            return None
        self.screen = screen
        self._update_view()
        return asyncio.create_task(screen.wait_closed(), name="screen")

    # -- reload (SIGHUP, kioskctl reload) -------------------------------------------------------

    # Sections a running daemon cannot take over without reconnecting or re-binding.
    RESTART_SECTIONS = ("signaling", "control")

    def apply_config(self, new: Config) -> list[str]:
        """Take over a re-read config without touching a call in progress.

        Answer policy and timers apply from the next event; media, display and rtc settings
        from the next call. Returns the sections that only a restart can apply (logged)."""
        old = self.config
        needs_restart = [name for name in self.RESTART_SECTIONS
                         if getattr(old, name) != getattr(new, name)]
        for name in needs_restart:
            log.warning("config: [%s] changed; it takes effect after a restart "
                        "(systemctl restart kioskd)", name)
        self.config = new
        self.machine.policy = AnswerPolicy(new.answer.mode, tuple(new.answer.allow),
                                           new.answer.delay_s)
        self.machine.timeouts = Timeouts(new.call.ring_timeout_s, new.call.connect_timeout_s,
                                         new.call.disconnect_grace_s)
        self._ice_servers = ice_servers_of(new)
        logging.getLogger().setLevel(new.log.level.upper())
        log.info("config reloaded%s", " (a call in progress keeps going)"
                 if self.machine.state is not State.IDLE else "")
        return needs_restart

    # -- commands (control socket, UI) ---------------------------------------------------------

    def place_call(self, peer: protocol.PeerId | None = None, call_type: str = "video") -> str:
        target = peer if peer not in (None, "") else self.config.call.contact
        if not target:
            raise ValueError("no user to call: give one, or set call.contact in the config")
        self.post(ev.PlaceCall(target, call_type))
        return str(target)

    def status(self) -> dict[str, Any]:
        call = self.machine.call
        return {
            "kiosk": self.config.kiosk.name,
            "state": self.machine.state.value,
            "signaling": self.signaling.status,
            "reconnects": self.signaling.reconnects,
            "call": None if call is None else {
                "call_id": call.id,
                "peer": call.peer,
                "peer_name": call.peer_name,
                "direction": call.direction,
                "type": call.call_type,
                "connected_at": call.connected_at,  # epoch seconds
                "connected_for_s": round(time.time() - call.connected_at, 1)
                if call.connected_at else None,
                "media": self.media.counts(),
            },
            "mic_muted": self.mic_muted,
            "camera_off": self.camera_off,
            "calls_finished": self.calls_finished,
            "media_errors": self.media_errors or None,
            "media_notices": self.media_notices or None,
            "last_call": self.last_call or None,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def _open_call_log(self) -> None:
        path = default_path(self.config.calllog.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            calllog = CallLog(path, max_rows=self.config.calllog.max_rows,
                              max_age_days=self.config.calllog.max_age_days)
        except Exception as exc:
            # Calls matter more than their history: answer them, and say what is wrong.
            log.error("cannot open the call log %s (%s): calls are not recorded; set "
                      "calllog.path to a writable file", path, exc)
            return
        interrupted = calllog.mark_interrupted()
        if interrupted:
            log.warning("%d call(s) were interrupted when kioskd last stopped", interrupted)
        self.calls = CallRecorder(calllog)
        log.info("call log at %s", path)

    async def run(self) -> None:
        """Run until cancelled; a long-lived task that dies takes the daemon down with it."""
        await asyncio.to_thread(self._open_call_log)
        if self.config.metrics.enabled:
            self._metrics_server = MetricsServer(self.metrics.registry, self.config.metrics.host,
                                                 self.config.metrics.port)
            await self._metrics_server.start()
        screen_task = await self._open_screen()  # first: the idle screen shows at once
        long_lived = [
            asyncio.create_task(self.dispatch_forever(), name="dispatcher"),
            asyncio.create_task(self.signaling.run(), name="signaling"),
            asyncio.create_task(watchdog_loop(self.notifier), name="watchdog"),
        ]
        if screen_task is not None:
            long_lived.append(screen_task)  # a dead render thread restarts the daemon
        self.notifier.ready(status_line(self.machine.state.value, self.signaling.status))
        try:
            done, _ = await asyncio.wait(long_lived, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise what killed it
            raise RuntimeError("a long-lived task ended")
        finally:
            for task in long_lived:
                task.cancel()
            await asyncio.gather(*long_lived, return_exceptions=True)
            await self.cleanup()

    async def cleanup(self) -> None:
        self.notifier.stopping()
        for handle in (self._deferred_view, self._memory_trim, *self._timers.values()):
            if handle is not None:
                handle.cancel()
        self._timers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._stop_sink(self.media)
        if self.screen is not None:
            await self.screen.stop()
        await self.signaling.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.calls is not None:
            await self.calls.aclose()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
