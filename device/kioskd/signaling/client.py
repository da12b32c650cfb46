"""The Socket.IO side of the kiosk: connect with the token, receive typed messages, send ours.

One reconnect loop of our own covers the first connect too (python-socketio's own loop does not
unless asked, and gives no say over the delays). Events are handed on in arrival order through
synchronous handlers: python-socketio runs each incoming packet as its own task, and a handler
that awaited before handing on could let a trickled candidate overtake its offer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import socketio

from .. import protocol
from ..policy.backoff import Backoff
from .network import NetworkWatch, address_alive, reachable, retransmitting

log = logging.getLogger(__name__)

OFFLINE, CONNECTING, ONLINE, UNAUTHORIZED = "offline", "connecting", "online", "unauthorized"
STALL_CHECK_S = 0.25  # how often the connection is checked, and test connections are made
PROBE_TIMEOUT_S = 5.0  # how long each test connection may take to open
STALL_RETRANSMITS = 3  # retransmission timeouts in a row (~1.4 s or more unacknowledged)
STALL_PROBE_WINDOW_S = 60.0  # after a stall, test connections this long; then the backoff


class SignalingClient:
    name = "signaling"

    def __init__(
        self,
        url: str,
        token: str,
        on_message: Callable[[protocol.Message], None],
        *,
        on_status: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
        verify_tls: bool = True,
        connect_timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self._token = token
        self._on_message = on_message
        self._on_status = on_status
        self._backoff = backoff or Backoff()
        self._verify_tls = verify_tls
        self._connect_timeout_s = connect_timeout_s
        self._sleep = sleep
        self._sio: socketio.AsyncClient | None = None
        self._send_lock = asyncio.Lock()  # python-socketio's emit is not safe concurrently
        self._refused_reason: str | None = None
        self._waiting: asyncio.Future[None] | None = None  # sio.wait() of the live connection
        self._retry_now = asyncio.Event()  # the network changed: don't wait out the backoff
        self._probe_until = 0.0  # time.monotonic(): reconnect when the server answers, till then
        self._network = NetworkWatch(self.network_changed)
        self.status = OFFLINE
        self.last_error: str | None = None  # why we are not online (None while online)
        self.reconnects = 0
        self.connected = asyncio.Event()

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            if self._on_status:
                self._on_status(status)

    def _new_client(self) -> socketio.AsyncClient:
        # handle_sigint=False: the daemon owns its signals (SIGINT/SIGTERM cancel the main task).
        sio = socketio.AsyncClient(reconnection=False, ssl_verify=self._verify_tls,
                                   handle_sigint=False)
        for event in protocol.ALL_EVENTS:
            sio.on(event, self._receiver(event))
        sio.on("connect_error", self._connect_error)
        sio.on("*", self._unknown_event)
        return sio

    def _receiver(self, event: str) -> Callable[..., None]:
        def receive(*args: Any) -> None:  # synchronous on purpose: see module docstring
            try:
                message = protocol.parse(event, args[0] if args else None)
            except protocol.ProtocolError as exc:
                log.warning("dropped malformed %s: %s", event, exc)
                return
            try:
                self._on_message(message)
            except Exception:  # a bug in a consumer must not cut the connection
                log.exception("handling %s failed", event)

        return receive

    def _connect_error(self, data: Any = None) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        self._refused_reason = str(message) if message is not None else "refused"

    def _unknown_event(self, event: str, *args: Any) -> None:
        log.debug("ignored unknown event %r", event)

    async def run(self) -> None:
        """Stay connected until cancelled."""
        while True:
            self._set_status(CONNECTING)
            self._refused_reason = None
            sio = self._new_client()
            try:
                await sio.connect(
                    self.url,
                    auth={"token": self._token},
                    wait_timeout=self._connect_timeout_s,
                )
            except (TimeoutError, socketio.exceptions.ConnectionError, OSError) as exc:
                await self._close(sio)
                if self._refused_reason == "unauthorized":
                    self.last_error = ("the server refused this kiosk's token (unauthorized): "
                                       "check signaling.token_file")
                    self._set_status(UNAUTHORIZED)
                    delay = self._backoff.misconfigured_delay()
                    log.error(
                        "signaling server %s refused our token (unauthorized): check "
                        "signaling.token_file; retrying in %.0f s", self.url, delay)
                else:
                    self.last_error = f"cannot reach {self.url}: {self._refused_reason or exc}"
                    self._set_status(OFFLINE)
                    delay = self._backoff.next_delay()
                    log.warning("cannot reach signaling server %s (%s); retrying in %.1f s",
                                self.url, self._refused_reason or exc, delay)
                await self._pause(delay)
                continue
            except BaseException:
                await self._close(sio)
                raise
            self._sio = sio
            self._backoff.reset()
            self._probe_until = 0.0
            self.last_error = None
            self._set_status(ONLINE)
            self.connected.set()
            log.info("connected to signaling server %s", self.url)
            # Cancelled (the daemon stops): stay connected, so that a call in progress can still
            # be hung up; stop() leaves the server after that. Shielded: cancelling wait() would
            # cancel Engine.IO's read loop under the connection.
            # Engine.IO's wait, not Socket.IO's: that one adds a second for a reconnect task
            # we do not use (reconnection=False: this loop reconnects).
            self._waiting = asyncio.ensure_future(sio.eio.wait())
            stalls = asyncio.ensure_future(self._watch_stalls(sio))
            try:
                await asyncio.shield(self._waiting)
            finally:
                stalls.cancel()
            self._waiting = None
            self.connected.clear()
            self._sio = None
            await self._close(sio)
            self.reconnects += 1
            self.last_error = f"lost the connection to {self.url}; reconnecting"
            self._set_status(OFFLINE)
            delay = self._backoff.next_delay()
            log.warning("lost the signaling server; reconnecting in %.1f s", delay)
            await self._pause(delay)

    async def _close(self, sio: socketio.AsyncClient) -> None:
        try:
            await asyncio.wait_for(sio.disconnect(), timeout=2)
        except Exception as exc:
            log.debug("disconnect: %r", exc)
        # A failed connect leaves Engine.IO's HTTP session open; over days offline that adds up.
        http = getattr(sio.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()

    async def send(self, message: protocol.PeerMessage) -> bool:
        """Emit one message; False (and a log line) if we are offline right now."""
        event, payload = protocol.to_wire(message)
        async with self._send_lock:
            sio = self._sio
            if sio is None or not sio.connected:
                log.warning("offline: could not send %s to %s", event, message.peer)
                return False
            try:
                await sio.emit(event, payload)
            except Exception as exc:
                log.warning("sending %s failed: %r", event, exc)
                return False
        return True

    async def start(self) -> None:
        """Watch the network; `run()` connects and stays connected."""
        self._network.start()

    async def stop(self) -> None:
        """Leave the server (after the call runner has said goodbye to a peer)."""
        self._network.stop()
        await self.close()

    # -- the network changed ----------------------------------------------------------------

    def network_changed(self, event: str) -> None:
        """Links, addresses or routes changed (NetworkWatch): a reconnect loop that waits
        retries at once, and a connection whose local address is gone is dropped and made
        again now, not when Engine.IO's ping times out."""
        self._retry_now.set()
        sio = self._sio
        sock = _connection_socket(sio)
        if sock is not None and not address_alive(sock.getsockname()[0]):
            log.warning("this kiosk's address changed (%s): reconnecting to %s now", event,
                        self.url)
            # Not Engine.IO's disconnect(): its close handshake waits ~10 s on a dead path.
            # A shut socket ends the read loop at once, and run() connects again.
            sock.shutdown(socket.SHUT_RDWR)

    async def _watch_stalls(self, sio: socketio.AsyncClient) -> None:
        """A connection whose data goes unacknowledged (the network went silent: Wi-Fi still
        associated, the uplink gone) retries ever more slowly: after the outage its next
        retransmission, and every message queued behind it (a call's answer), may wait
        seconds, and no netlink event says when the path is back. So a connection that keeps
        retransmitting is dropped (we are offline, and say so), and the reconnect waits for a
        test connection to the server to open (`_pause`), made every STALL_CHECK_S."""
        while True:
            await asyncio.sleep(STALL_CHECK_S)  # a check interval, not a wait on work
            sock = _connection_socket(sio)
            if sock is not None and retransmitting(sock) >= STALL_RETRANSMITS:
                log.warning("nothing sent to the signaling server is acknowledged any more: "
                            "reconnecting as soon as %s answers", self.url)
                self._probe_until = time.monotonic() + STALL_PROBE_WINDOW_S
                sock.shutdown(socket.SHUT_RDWR)
                return

    async def _server_answers(self) -> None:
        """Returns once a test connection to the server opens: a new one every
        STALL_CHECK_S, each given PROBE_TIMEOUT_S (a slow link's round trip is longer than
        the interval)."""
        host, port = _server_address(self.url)
        probes: set[asyncio.Future[bool]] = set()
        try:
            while True:
                probes.add(asyncio.ensure_future(reachable(host, port, PROBE_TIMEOUT_S)))
                done, probes = await asyncio.wait(probes, timeout=STALL_CHECK_S,
                                                  return_when=asyncio.FIRST_COMPLETED)
                if any(probe.result() for probe in done):
                    return
        finally:
            for probe in probes:
                probe.cancel()

    async def _pause(self, delay: float) -> None:
        """The backoff delay, cut short when the network changes (a link or address back).
        After a stall (`_watch_stalls`), for STALL_PROBE_WINDOW_S: until the server answers
        a test connection instead, whatever netlink says (a connect attempt into a silent
        network, or one made the moment a link comes up, waits out SYN retransmissions 1, 2,
        4 s apart, long after the path is back)."""
        if time.monotonic() < self._probe_until:
            await self._server_answers()
        elif not self._retry_now.is_set():
            sleeping = asyncio.ensure_future(self._sleep(delay))
            changed = asyncio.ensure_future(self._retry_now.wait())
            try:
                await asyncio.wait({sleeping, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                changed.cancel()
        self._retry_now.clear()

    async def close(self) -> None:
        sio, self._sio = self._sio, None
        waiting, self._waiting = self._waiting, None
        self.connected.clear()
        if sio is not None:
            await self._close(sio)
        if waiting is not None:
            # Disconnected now: what is left of wait() is python-socketio's 1 s pause for a
            # reconnect that will not come.
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)


def _server_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme in ("https", "wss") else 80)


def _connection_socket(sio: socketio.AsyncClient | None) -> Any:
    """The live connection's socket, as asyncio lends it (getsockname, shutdown); None when
    there is none, or with long-polling, which has no lasting one."""
    ws = getattr(sio.eio, "ws", None) if sio is not None else None
    return ws.get_extra_info("socket") if ws is not None else None

