"""What the kiosk says about itself, kept in one place.

Whenever something a person can see changes (the call state, the signaling connection, a
device problem, mute), `changed()` brings all of them up to date: the line `systemctl status`
shows, the screen's View (ui/status_view.py builds it), and `state_changed`, the condition
that kioskctl's tools and the tests wait on. `status()` is what `kioskctl status` prints.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .call.runner import CallRunner
from .call.states import State
from .config import Config
from .health import Notifier, status_line
from .media.local import LocalMedia
from .media.shedding import VideoShedding
from .screen_service import ScreenService
from .signaling.client import SignalingClient
from .tasks import TaskSet
from .ui.status_view import Snapshot, build_view
from .ui.view import View

log = logging.getLogger(__name__)

# The "connecting" screen waits this long: drawing it holds the GIL while the answer and the
# DTLS handshake run (3-4 ms of set-up on a loopback call), and a connection that is quicker
# than this goes straight from the last screen to the call's without a flash in between.
CONNECTING_SCREEN_DELAY_S = 0.2


class KioskStatus:
    name = "status"

    def __init__(self, config: Config, runner: CallRunner, signaling: SignalingClient,
                 local: LocalMedia, notifier: Notifier,
                 screen_service: ScreenService, shedding: VideoShedding | None = None) -> None:
        self.config = config
        self.runner = runner
        self.signaling = signaling
        self.local = local
        self.notifier = notifier
        self.screen_service = screen_service
        self.shedding = shedding
        self.show: Callable[[View], None] | None = None  # the screen's update, when there is one
        self.state_changed = asyncio.Condition()
        self._deferred_view: asyncio.TimerHandle | None = None
        self._shown_state: str | None = None
        self._notifications = TaskSet("status notifications")

    def changed(self) -> None:
        """Something a person can see changed: bring the status line, screen and waiters up
        to date. On the loop."""
        self.notifier.status(self.line())
        self._update_view()
        self._notifications.spawn(self._notify(), name="notify state")

    async def _notify(self) -> None:
        async with self.state_changed:
            self.state_changed.notify_all()

    async def wait_for_state(self, state: State, timeout: float = 10.0) -> None:
        """For tests and tools: wait until the call machine is in `state`."""
        machine = self.runner.machine
        async with self.state_changed:
            await asyncio.wait_for(self.state_changed.wait_for(lambda: machine.state is state),
                                   timeout)

    def line(self) -> str:
        call = self.runner.machine.call
        peer = (call.peer_name or str(call.peer)) if call else ""
        return status_line(self.runner.machine.state.value, self.signaling.status, peer)

    async def start(self) -> None:
        """After the screen has opened (or not): show the idle screen at once."""
        if self.screen_service.screen is not None:
            self.show = self.screen_service.screen.update
            self.show_view()

    async def stop(self) -> None:
        self.show = None
        if self._deferred_view is not None:
            self._deferred_view.cancel()
        await self._notifications.cancel_all()

    # -- the screen -------------------------------------------------------------------------

    def _update_view(self) -> None:
        if self.show is None:
            return
        state = self.runner.machine.state.value
        if state == "connecting" and self._shown_state != "connecting":
            if self._deferred_view is None:
                self._deferred_view = asyncio.get_running_loop().call_later(
                    CONNECTING_SCREEN_DELAY_S, self._show_deferred)
            return
        if self._deferred_view is not None:
            self._deferred_view.cancel()
            self._deferred_view = None
        self.show_view()

    def _show_deferred(self) -> None:
        self._deferred_view = None
        self.show_view()

    def show_view(self) -> None:
        if self.show is not None:
            view = build_view(self.snapshot(), self.config)
            self._shown_state = view.state
            self.show(view)

    def snapshot(self) -> Snapshot:
        runner = self.runner
        return Snapshot(
            state=runner.machine.state.value, call=runner.machine.call,
            signaling_status=self.signaling.status, now=time.monotonic(), wall=time.time(),
            problems=self.local.problems.snapshot(), reconnecting=runner.reconnecting,
            mic_muted=self.local.off["audio"],
            camera_off=self.local.off["video"], last_outcome=runner.last_outcome,
            ringing_since=runner.ringing_since)

    # -- kioskctl status --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        runner, signaling, problems = self.runner, self.signaling, self.local.problems
        call = runner.machine.call
        return {
            "kiosk": self.config.kiosk.name,
            "state": runner.machine.state.value,
            "signaling": signaling.status,
            "signaling_error": signaling.last_error,  # why it is not online, if it is not
            "signaling_url": self.config.signaling.url,
            "reconnects": signaling.reconnects,
            "call": None if call is None else {
                "call_id": call.id,
                "peer": call.peer,
                "peer_name": call.peer_name,
                "direction": call.direction,
                "type": call.call_type,
                "connected_at": call.connected_at,  # epoch seconds
                "connected_for_s": round(time.time() - call.connected_at, 1)
                if call.connected_at else None,
                "media": runner.media.counts() if runner.media is not None else {},
                "reconnecting": runner.reconnecting,  # the media path is lost; grace runs
            },
            "mic_muted": self.local.off["audio"],
            "camera_off": self.local.off["video"],
            # The microphone's echo cancellation, noise suppression and gain, in a call.
            "audio_processing": self.local.audio_processing(),
            # The CPU in a call, and how much video it sheds (media/shedding.py).
            "video_shedding": self.shedding.stats() if self.shedding is not None else None,
            "calls_finished": runner.calls_finished,
            "media_errors": problems.errors() or None,
            "media_notices": problems.notices() or None,
            "last_call": runner.last_call or None,
        }
