"""The call runner: feeds every event to the call machine, in order, and carries out its effects.

Every input (signaling messages, local commands, rtc results, timers) becomes an event on one
queue; one dispatcher hands them to the pure machine (call/machine.py) and executes the effects
it returns: send a message, answer or place a call on an rtc session, start or cancel a timer,
release a call, record a finished one. Slow rtc work (opening devices, ICE gathering, DTLS)
runs in tasks that report back as events, so a hang-up is never stuck behind a connection that
is still being built. Every task a call starts is awaited or cancelled when the call ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..calllog import CallLogService
from ..config import Config
from ..media.echo_reference import EchoReference
from ..media.local import LocalMedia
from ..media.measure import MeasuringSink
from ..media.remote import RemoteMedia
from ..memory import release_free_memory
from ..metrics import KioskMetrics
from ..policy.answer import AnswerPolicy
from ..protocol import SessionDescription
from ..rtc.ice import ice_servers
from ..rtc.session import MediaPlan, RtcError, RtcSession
from ..rtc.watchdog import BACK, LOST
from ..signaling.client import SignalingClient
from ..signaling.network import address_alive
from ..tasks import TaskSet
from ..ui.status_view import LastOutcome
from . import events as ev
from .machine import CallMachine, Timeouts
from .states import State
from .timers import CallTimers

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 1024  # far above any real call's burst; a flood is dropped, not queued
RTC_STATS_INTERVAL_S = 2.0  # how often a call's packet loss and RTT are sampled
# Memory goes back to the system once the kiosk has been idle this long after a call: the
# collection holds the GIL for tens of ms, which a call coming right after must not wait for.
MEMORY_TRIM_DELAY_S = 1.0
STOP_TIMEOUT_S = 5.0  # how long a stopping kiosk waits for its call-end and release


def answer_policy(config: Config) -> AnswerPolicy:
    return AnswerPolicy(config.answer.mode, tuple(config.answer.allow), config.answer.delay_s)


def call_timeouts(config: Config) -> Timeouts:
    return Timeouts(config.call.ring_timeout_s, config.call.connect_timeout_s,
                    config.call.disconnect_grace_s)


class CallRunner:
    name = "call runner"

    def __init__(self, config: Config, signaling: SignalingClient, local: LocalMedia, *,
                 calllog: CallLogService, metrics: KioskMetrics,
                 new_video_sink: Callable[[], MeasuringSink],
                 on_change: Callable[[], None],
                 turn_secrets: Mapping[str, str] | None = None,
                 echo_reference: EchoReference | None = None) -> None:
        self.config = config
        self.echo_reference = echo_reference  # each call's speaker writes into it
        self.signaling = signaling
        self.local = local
        self.calllog = calllog
        self.metrics = metrics
        self._new_video_sink = new_video_sink
        self._on_change = on_change
        self.machine = CallMachine(answer_policy(config), call_timeouts(config),
                                   on_change=self._state_changed)
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.timers = CallTimers(self.post)
        self.session: RtcSession | None = None
        self.session_call: ev.Call | None = None  # the call (and attempt) of `session`
        self.media: RemoteMedia | None = None  # the current (or last) call's remote media
        self.ringing_since = 0.0  # time.monotonic()
        self.last_outcome: LastOutcome | None = None
        self.last_call: dict[str, Any] = {}
        self.calls_finished = 0
        self.turn_secrets = dict(turn_secrets or {})  # secret_file -> coturn's shared secret
        self._tasks = TaskSet("call runner")
        self._sends = TaskSet("signaling sends")
        self._session_tasks: list[asyncio.Task[None]] = []  # the stats sampler, the watchdog
        self._memory_trim: asyncio.TimerHandle | None = None

    def apply_config(self, config: Config, turn_secrets: Mapping[str, str]) -> None:
        """A reloaded config: policy and timers from the next event, the rest next call."""
        self.config = config
        self.turn_secrets = dict(turn_secrets)
        self.machine.policy = answer_policy(config)
        self.machine.timeouts = call_timeouts(config)

    # -- inputs -----------------------------------------------------------------------------

    def post(self, event: ev.Event) -> None:
        """Queue an event for the machine; safe from any callback on the loop."""
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event queue full: dropped %s", type(event).__name__)

    async def start(self) -> None:
        """Nothing to open: calls come as events, which `run()` dispatches."""

    async def run(self) -> None:
        """The dispatcher, for the daemon's whole life."""
        while True:
            self._handle(await self.events.get())

    def _handle(self, event: ev.Event) -> None:
        try:
            effects = self.machine.handle(event, time.time())
        except Exception:  # a bug must not take the kiosk off the air
            log.exception("call machine failed on %s", type(event).__name__)
            return
        for effect in effects:
            try:
                self._execute(effect)
            except Exception:
                log.exception("effect %s failed", type(effect).__name__)

    def _state_changed(self, old: State, new: State, call: ev.Call | None) -> None:
        if new is State.RINGING:
            self.ringing_since = time.monotonic()
        if self.calllog.recorder is not None:
            self.calllog.recorder.state_changed(new.value, call)
        self.metrics.state_changed(new.value)
        self._on_change()

    # -- effects ----------------------------------------------------------------------------

    def _execute(self, effect: ev.Effect) -> None:
        if isinstance(effect, ev.Send):
            self._sends.spawn(self.signaling.send(effect.message), name="send")
        elif isinstance(effect, ev.AcceptOffer):
            session = self._open_session(effect.call)
            self._rtc_step(effect.call, "answer",
                           session.accept(effect.offer, effect.candidates))
        elif isinstance(effect, ev.CreateOffer):
            session = self._open_session(effect.call)
            self._rtc_step(effect.call, "offer", session.offer(effect.call.call_type))
        elif isinstance(effect, ev.Reoffer):
            negotiated = self.session.negotiated() if self.session is not None else None
            # Through TURN before (or a relay-only re-offer that has not connected yet).
            relayed = self.session is not None and (self.session.relayed()
                                                    or self.session.relay_only)
            if relayed:
                log.info("call %s: re-offering with TURN relay candidates only, as the call "
                         "went through the relay", effect.call.id)
            session = self._open_session(effect.call, relay_only=relayed)
            if negotiated is None:
                self.post(ev.RtcFailed(effect.call.id, effect.call.attempt,
                                       "nothing was negotiated to re-offer"))
            else:
                self._rtc_step(effect.call, "re-offer", session.reoffer(negotiated))
        elif isinstance(effect, ev.ApplyAnswer):
            if self.session is not None:
                self._rtc_step(effect.call, "apply the answer",
                               self.session.apply_answer(effect.answer))
        elif isinstance(effect, ev.AddCandidate):
            if self.session is not None:
                self._tasks.spawn(self.session.add_candidate(effect.candidate), name="candidate")
        elif isinstance(effect, ev.StartTimer):
            self.timers.start(effect.name, effect.delay_s, effect.call_id)
        elif isinstance(effect, ev.CancelTimer):
            self.timers.cancel(effect.name, effect.call_id)
        elif isinstance(effect, ev.Release):
            self._tasks.spawn(self._release(effect.call), name=f"release {effect.call.id}")
        elif isinstance(effect, ev.Finished):
            self._finished(effect)

    def _rtc_step(self, call: ev.Call, what: str,
                  step: Awaitable[SessionDescription | None]) -> None:
        """Run one rtc step in a task; its result comes back to the machine as an event."""
        self._tasks.spawn(self._report(call, what, step), name=f"call {call.id} {what}")

    async def _report(self, call: ev.Call, what: str,
                      step: Awaitable[SessionDescription | None]) -> None:
        try:
            description = await step
        except RtcError as exc:
            self.post(ev.RtcFailed(call.id, call.attempt, str(exc)))
            return
        except Exception as exc:
            log.exception("call %s: %s failed", call.id, what)
            self.post(ev.RtcFailed(call.id, call.attempt, repr(exc)))
            return
        if description is not None:
            self.post(ev.LocalDescription(call.id, call.attempt, description))

    # -- the call's connection --------------------------------------------------------------

    def _open_session(self, call: ev.Call, relay_only: bool = False) -> RtcSession:
        """A new peer connection for this attempt; a replaced one is closed behind it."""
        self._close_session()
        self.local.begin(call)
        media = RemoteMedia(call.id, self.config, self._new_video_sink, self.local.problems,
                            self.echo_reference)
        plan = MediaPlan(
            audio_source=lambda: self.local.open(call, "audio"),
            video_source=(lambda codecs: self.local.open(call, "video", codecs))
            if call.call_type == "video" else None,
            on_remote_track=media.add,
            on_audio_only=lambda why: self.local.audio_only(call, why),
            video_codecs=self.config.rtc.video_codecs,
            encoder_speed=self.config.video.encoder_speed,
            ice_servers=ice_servers(self.config, self.turn_secrets, time.time()),
            media_timeout_s=self.config.call.media_timeout_s,
            relay_only=relay_only,
            receive_video_bps=self.local.receive_video_bps,
        )
        session = RtcSession(
            call.id, plan,
            on_state=lambda state: self.post(ev.MediaState(call.id, call.attempt, state)))
        self.session, self.session_call, self.media = session, call, media
        self._session_tasks = [
            self._tasks.spawn(self._sample_rtc_stats(session, call, media),
                              name=f"call {call.id} stats"),
            self._tasks.spawn(self._watch_media(session, call), name=f"call {call.id} watchdog"),
        ]
        return session

    def _stop_session_tasks(self) -> None:
        for task in self._session_tasks:
            task.cancel()
        self._session_tasks = []

    def _close_session(self) -> None:
        """Close the current connection (and stop draining its media) in the background."""
        self._stop_session_tasks()
        session, self.session, self.session_call = self.session, None, None
        if session is not None:
            self._tasks.spawn(session.close(), name=f"close {session.call_id}")
        if self.media is not None:
            self._tasks.spawn(self.media.close(), name=f"close {self.media.call_id} media")

    async def _sample_rtc_stats(self, session: RtcSession, call: ev.Call,
                                media: RemoteMedia) -> None:
        """Packet loss and RTT from aiortc's stats, while this connection is the call's."""
        while True:
            await asyncio.sleep(RTC_STATS_INTERVAL_S)  # a sampling period, not a wait on work
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
            self.metrics.media(call.id, self._summary(call, media))

    async def _watch_media(self, session: RtcSession, call: ev.Call) -> None:
        """Tell the machine when the peer goes quiet (the path is lost) and when it is heard
        again; aiortc itself would say nothing for ~30 s (rtc/watchdog.py)."""
        watchdog = session.watchdog
        while True:
            await asyncio.sleep(watchdog.check_interval_s)  # a check interval, not a wait on work
            change = watchdog.check()
            if change == LOST:
                self._path_lost(call, f"nothing from {call.peer} for {watchdog.timeout_s:.1f} s")
            elif change == BACK:
                log.info("call %s: media from %s again", call.id, call.peer)
                self.post(ev.MediaState(call.id, call.attempt, "connected"))
                self._on_change()  # the screen and status stop saying "reconnecting"

    def _path_lost(self, call: ev.Call, why: str) -> None:
        """The grace begins, the screen and status say "reconnecting"; re-offer if we can."""
        log.warning("call %s: %s: the media path is lost", call.id, why)
        self.metrics.media_lost.inc()
        self.post(ev.MediaState(call.id, call.attempt, "disconnected"))
        self._on_change()
        self.recover()

    def recover(self) -> None:
        """Re-offer in the same call if its media path is lost (or a re-offer is under way)
        and the server can carry the offer: called when the path is lost and when the
        signaling connection comes back. After a roam it comes back on the new address, and
        a connection whose addresses are all gone is lost without waiting for the watchdog."""
        call, session = self.session_call, self.session
        if call is None or session is None or self.signaling.status != "online":
            return
        addresses = session.host_addresses()
        if addresses and not any(map(address_alive, addresses)) \
                and session.watchdog.declare_lost():
            self._path_lost(call, f"its addresses {sorted(addresses)} are gone")
            return  # (which comes back here, lost)
        if session.watchdog.lost or self.machine.state is State.RECOVERING:
            self.post(ev.Recover(call.id, call.attempt))

    @property
    def reconnecting(self) -> bool:
        """The current call's media path is lost; its grace runs (and a re-offer may be out)."""
        return self.machine.state is State.RECOVERING or (
            self.session is not None and self.session.watchdog.lost)

    async def _release(self, call: ev.Call) -> None:
        self.timers.cancel_call(call.id)
        self._stop_session_tasks()
        session, self.session, self.session_call = self.session, None, None
        if session is not None:
            await session.close()
        if self.media is not None:
            await self.media.close()
        await self.local.end(call)
        self.post(ev.Released(call.id))
        # Between calls, so that hundreds of calls do not creep up the resident memory.
        if self._memory_trim is not None:
            self._memory_trim.cancel()
        self._memory_trim = asyncio.get_running_loop().call_later(
            MEMORY_TRIM_DELAY_S, self._trim_memory_if_idle)

    def _trim_memory_if_idle(self) -> None:
        self._memory_trim = None
        if self.machine.state is State.IDLE:  # else the end of this call will ask again
            self._tasks.spawn(asyncio.to_thread(release_free_memory), name="memory trim")

    # -- a finished call --------------------------------------------------------------------

    def _summary(self, call: ev.Call, media: RemoteMedia) -> dict[str, Any]:
        """The call log's and metrics' media summary: what was received, and frames sent."""
        return {**media.summary(), "frames_sent": self.local.frames_sent(call)}

    def _finished(self, effect: ev.Finished) -> None:
        call = effect.call
        own_media = (self.session_call is not None and self.session_call.id == call.id
                     and self.media is not None)
        summary = self._summary(call, self.media) if own_media and self.media else None
        if self.calllog.recorder is not None:
            self.calllog.recorder.finished(effect, summary)
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
            "media": self.media.counts() if own_media and self.media else {},
        }
        if effect.outcome not in ("busy", "refused") or own_media:
            # A caller refused while another call goes on is not news for the screen.
            self.last_outcome = LastOutcome(effect.outcome, call.peer_name or str(call.peer),
                                            call.direction, time.monotonic())
        log.info("call %s with %s (%s) ended: %s (%s)", call.id, call.peer,
                 call.peer_name or "?", effect.outcome, effect.reason)

    # -- stopping ---------------------------------------------------------------------------

    async def stop(self) -> None:
        """Hang up a call in progress (the peer hears it before the kiosk leaves the server),
        release it, and cancel whatever is left."""
        if self.machine.state not in (State.IDLE, State.ENDING):
            log.info("stopping: hanging up the call in progress")
            self._handle(ev.Hangup())
        if not await self._tasks.wait_all(STOP_TIMEOUT_S):
            log.warning("stopping: the call's release did not finish in %.0f s",
                        STOP_TIMEOUT_S)
        if not await self._sends.wait_all(STOP_TIMEOUT_S):
            log.warning("stopping: a message to the server was not sent in %.0f s",
                        STOP_TIMEOUT_S)
        self.timers.cancel_all()
        if self._memory_trim is not None:
            self._memory_trim.cancel()
        await self._tasks.cancel_all()
        await self._sends.cancel_all()
        session, self.session = self.session, None
        if session is not None:  # the release did not get to it
            await session.close()
        if self.media is not None:
            await self.media.close()
