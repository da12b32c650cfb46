"""Composition root: config -> components -> run -> stop.

    control socket   refuses to start beside another kioskd; kioskctl's commands
    call log         call history in SQLite
    metrics server   Prometheus text at /metrics (metrics.enabled)
    video shedding   watches the CPU in a call; sends and draws less video when it is pressed
    screen           the kiosk's display, or headless
    signaling        the Socket.IO connection to the web app's server
    call runner      the event queue, the call machine and its effects
    status           what systemctl, kioskctl and the screen show
    health           sd_notify ready/stopping and the watchdog

They start in that order and stop in reverse (lifecycle.py): the runner hangs up a call in
progress while the signaling connection is still there, and the call log closes last but one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from . import protocol
from .call import events as ev
from .call.runner import CallRunner
from .call.states import State
from .calllog import CallLogService
from .config import Config, ConfigError, load_config, read_turn_secrets
from .control import COMMAND_EVENTS, ControlServer, socket_path
from .health import Health, Notifier
from .lifecycle import Component, run_until_one_ends, start_all, stop_all
from .media.echo_reference import EchoReference
from .media.local import LocalMedia
from .media.problems import Problems
from .media.shedding import VideoShedding
from .metrics import KioskMetrics, MetricsServer
from .screen_service import ScreenService
from .signaling.client import SignalingClient
from .status import KioskStatus

log = logging.getLogger(__name__)

# Sections a running daemon cannot take over without reconnecting or re-binding.
RESTART_SECTIONS = ("signaling", "control")


class KioskApp:
    def __init__(self, config: Config, token: str, overrides: Sequence[str] = (),
                 turn_secrets: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.overrides = list(overrides)  # the --set options, for reload and kioskctl
        self.notifier = Notifier()
        self.metrics = KioskMetrics()
        self.problems = Problems(on_change=self._changed)
        self.calllog = CallLogService(config.calllog.path, config.calllog.max_rows,
                                      config.calllog.max_age_days)
        self.shedding = VideoShedding(config.video.shed_under_load)
        self.screen_service = ScreenService(config, self.on_command, self.problems,
                                            screen_fps=self.shedding.screen_fps)
        # What each call's speaker plays, for its microphone's echo canceller: one for the
        # kiosk, shared by the two sides (media/echo_reference.py).
        self.echo_reference = EchoReference()
        self.local_media = LocalMedia(config, self.problems, preview=self._preview,
                                      echo_reference=self.echo_reference,
                                      shedding=self.shedding)
        self.signaling = SignalingClient(
            config.signaling.url, token, self.post, on_status=self._signaling_status,
            verify_tls=config.signaling.verify_tls,
            connect_timeout_s=config.signaling.connect_timeout_s)
        self.metrics.registry.add_collector(
            lambda: self.metrics.reconnects.set_total(self.signaling.reconnects))
        self.metrics.registry.add_collector(
            lambda: self.metrics.audio_processing(self.local_media.audio_processing()))
        self.metrics.registry.add_collector(
            lambda: self.metrics.video_shedding(self.shedding.stats()))
        self.runner = CallRunner(config, self.signaling, self.local_media, calllog=self.calllog,
                                 metrics=self.metrics,
                                 new_video_sink=self.screen_service.new_video_sink,
                                 on_change=self._changed,
                                 turn_secrets=read_turn_secrets(config) if turn_secrets is None
                                 else turn_secrets, echo_reference=self.echo_reference)
        self.status_keeper = KioskStatus(config, self.runner, self.signaling, self.local_media,
                                         self.notifier, self.screen_service, self.shedding)
        self.control = ControlServer(self, socket_path(config.control.socket))
        self.health = Health(self.notifier, self.status_keeper.line)
        self.components: list[Component] = [self.control, self.calllog]
        if config.metrics.enabled:
            self.components.append(MetricsServer(self.metrics.registry, config.metrics.host,
                                                 config.metrics.port))
        self.components += [self.shedding, self.screen_service, self.signaling, self.runner,
                            self.status_keeper, self.health]

    @property
    def screen(self) -> Any:
        """The kiosk's screen (ui.KioskScreen); None when headless."""
        return self.screen_service.screen

    async def run(self) -> None:
        """Run until cancelled; a long-lived task that dies takes the daemon down with it."""
        await start_all(self.components)
        try:
            await run_until_one_ends({
                "dispatcher": self.runner.run,
                "signaling": self.signaling.run,
                "watchdog": self.health.run,
                "screen": self.screen_service.run,  # a dead render thread restarts the daemon
            })
        finally:
            await stop_all(self.components)

    def _changed(self) -> None:
        self.status_keeper.changed()

    def _signaling_status(self, status: str) -> None:
        if status == "online":
            self.runner.recover()  # a call whose path was lost re-offers on the new route
        self._changed()

    def _preview(self, frame: Any) -> None:
        if self.screen is not None:
            self.screen.show_preview(frame)

    # -- commands: kioskctl, the screen's buttons, GPIO -------------------------------------

    def post(self, event: ev.Event) -> None:
        self.runner.post(event)

    def place_call(self, peer: protocol.PeerId | None = None, call_type: str = "video") -> str:
        """Call `peer` (or call.contact). ValueError says why the kiosk cannot call now."""
        target = peer if peer not in (None, "") else self.config.call.contact
        if not target:
            raise ValueError("no user to call: give one, or set call.contact in the config")
        if self.signaling.status != "online":
            raise ValueError(f"the kiosk is {self.signaling.status} and cannot call now: "
                             f"{self.signaling.last_error or 'not connected to the server yet'}")
        self.post(ev.PlaceCall(target, call_type))
        return str(target)

    def set_muted(self, kind: str, off: bool | None = None) -> bool:
        return self.local_media.set_off(kind, off)

    def on_command(self, command: str) -> None:
        """A touch, key or GPIO button (on the loop): answer, decline, hangup, call, mute_mic,
        camera_off."""
        if command in COMMAND_EVENTS:
            self.post(COMMAND_EVENTS[command]())
        elif command == "call":
            try:
                self.place_call()
            except ValueError as exc:
                log.warning("call button: %s", exc)
        elif command in ("mute_mic", "camera_off"):
            self.set_muted("audio" if command == "mute_mic" else "video")
        else:
            log.warning("unknown screen command %r", command)

    def status(self) -> dict[str, Any]:
        return self.status_keeper.status()

    async def wait_for_state(self, state: State, timeout: float = 10.0) -> None:
        await self.status_keeper.wait_for_state(state, timeout)

    # -- reload (SIGHUP, kioskctl reload) -----------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config the daemon started with; False (logged) if it has errors."""
        self.notifier.reloading()
        try:
            try:
                new = load_config(self.config.path, self.overrides)
                secrets = read_turn_secrets(new)
            except ConfigError as exc:
                log.error("config reload refused, keeping the running config:\n%s", exc)
                return False
            self.apply_config(new, secrets)
            return True
        finally:
            self.notifier.ready()

    def apply_config(self, new: Config, turn_secrets: Mapping[str, str] | None = None
                     ) -> list[str]:
        """Take over a re-read config without touching a call in progress.

        Answer policy and timers apply from the next event; media, display and rtc settings
        from the next call. Returns the sections that only a restart can apply (logged)."""
        needs_restart = [name for name in RESTART_SECTIONS
                         if getattr(self.config, name) != getattr(new, name)]
        for name in needs_restart:
            log.warning("config: [%s] changed; it takes effect after a restart "
                        "(systemctl restart kioskd)", name)
        self.config = self.local_media.config = self.status_keeper.config = new
        self.shedding.enabled = new.video.shed_under_load
        self.runner.apply_config(new, self.runner.turn_secrets if turn_secrets is None
                                 else turn_secrets)
        logging.getLogger().setLevel(new.log.level.upper())
        log.info("config reloaded%s", " (a call in progress keeps going)"
                 if self.runner.machine.state is not State.IDLE else "")
        return needs_restart
