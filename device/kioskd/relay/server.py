"""kioskd-relay: the reference signaling server of PROTOCOL.md.

Each client authenticates with a token that names its user. A relayed event addressed `to` a
user goes to every socket of that user, with `to` replaced by the sender's `from` (and
`fromUsername`). The relay never inspects SDP or candidates (the endpoints do); it only makes
sure a hostile payload cannot crash it or reach anyone in a shape the protocol does not allow.

Use from code and tests:

    async with running_relay({"tok": {"userId": "kiosk-1", "username": "Lobby"}}) as relay:
        ... connect a Socket.IO client to relay.url ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web

from .. import protocol
from .tokens import TokensError, User, load_tokens, parse_tokens

if TYPE_CHECKING:
    from . import cluster

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD = 128 * 1024
STATIC_DIR = Path(__file__).with_name("static")

DEFAULT_PRESENCE_TTL = 15.0  # seconds; see cluster.py
JOIN_TIMEOUT = 5.0  # seconds for Redis to confirm this node listens

OFFLINE, TOO_LARGE, BAD_REQUEST = "user-offline", "payload-too-large", "bad-request"


REDIS_MISSING = ("--redis needs the 'redis' Python package, which is not installed: "
                 "pip install -c constraints.txt -e '.[relay-redis]' (or: pip install redis)")


class RelayError(RuntimeError):
    """Something the operator must fix (a missing package, an unreachable Redis). The message
    is one sentence."""


def _redis_available() -> bool:
    # Presence talks to Redis with the `redis` package itself, not only through python-socketio.
    return importlib.util.find_spec("redis") is not None


def _room(user_key: str) -> str:
    return f"user:{user_key}"


def _encoded_size(payload: Any) -> int | None:
    """Bytes of the payload as compact JSON, about its size on the wire; None if unencodable."""
    try:
        return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        return None


class _OneLineErrors(logging.Filter):
    """Engine.IO lets a full traceback be logged for every undecodable packet or frame, even
    from a client that never authenticated, so a hostile one could flood the log. Keep one line:
    what failed and why. Other aiohttp errors (ours) keep their tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (record.name == "engineio.server" or _raised_in_engineio(exc)):
            line = f"dropped a bad request or packet: {record.getMessage()}: "
            record.msg = (line + f"{type(exc).__name__}: {exc}")[:300]
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _raised_in_engineio(exc: BaseException) -> bool:
    return any("engineio" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def _quiet_transport_errors() -> None:
    for name in ("engineio.server", "aiohttp.server"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLineErrors) for f in logger.filters):
            logger.addFilter(_OneLineErrors())


class Relay:
    """One relay node: a Socket.IO server on an aiohttp app, plus /healthz and the static page."""

    def __init__(
        self,
        tokens: Mapping[str, User] | Mapping[str, Mapping[str, Any]],
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        redis_url: str | None = None,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
        static_dir: Path | str | None = STATIC_DIR,
    ) -> None:
        if max_payload <= 0:
            raise ValueError("max_payload must be a positive number of bytes")
        # Already-validated users pass through; raw file-shaped dicts are checked here.
        if tokens and all(isinstance(v, User) for v in tokens.values()):
            self.tokens: dict[str, User] = dict(tokens)  # type: ignore[arg-type]
        else:
            self.tokens = parse_tokens(tokens)
        self.max_payload = max_payload
        self.redis_url = redis_url
        self.url = ""
        self._users: dict[str, User] = {}  # sid -> its user (this node only)
        self._sockets: dict[str, set[str]] = {}  # str(userId) -> its sids (this node only)
        self._runner: web.AppRunner | None = None
        self._requests = 0  # HTTP requests in progress, Socket.IO transports included
        self._no_requests = asyncio.Event()
        self._no_requests.set()

        _quiet_transport_errors()
        self._manager: cluster.RedisManager | None = None
        self._presence: cluster.Presence | None = None
        if redis_url:
            # python-socketio would only notice a missing redis package at the first connection.
            if not _redis_available():
                raise RelayError(REDIS_MISSING)
            from . import cluster  # imports redis: only for a relay that uses it

            self._manager = cluster.RedisManager(redis_url)
            self._presence = cluster.Presence(redis_url, self._sockets, ttl=presence_ttl,
                                              listening=self._manager.listening.is_set)
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=self._manager,
            # The transport cap cuts off grossly oversized frames before they are even decoded;
            # headroom above max_payload lets a merely too-large event get a proper
            # payload-too-large reply, and leaves room for the packet envelope and for
            # long-polling batches of several packets.
            max_http_buffer_size=2 * max_payload + 4096,
            # Handle one client's events in arrival order: with a task per event, a trickled
            # candidate could overtake the offer it belongs to.
            async_handlers=False,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        for event in protocol.RELAYED_EVENTS:
            self.sio.on(event, self._handler(event))
        self.sio.on("*", self._on_unknown)

        self.app = web.Application(middlewares=[self._count_requests])
        self.sio.attach(self.app)
        self.app.router.add_get("/healthz", self._healthz)
        self._add_static(static_dir)

    # -- web -------------------------------------------------------------------------------

    @web.middleware
    async def _count_requests(self, request: web.Request, handler):
        self._requests += 1
        self._no_requests.clear()
        try:
            return await handler(request)
        finally:
            self._requests -= 1
            if not self._requests:
                self._no_requests.set()

    def _add_static(self, static_dir: Path | str | None) -> None:
        # Hook for the caller page, written separately: served only if it exists.
        if static_dir is None:
            return
        root = Path(static_dir)
        index = root / "index.html"
        if not index.is_file():
            return

        async def serve_index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(index)

        self.app.router.add_get("/", serve_index)
        self.app.router.add_static("/static/", root)

        # The vendored Socket.IO client, where a Node socket.io server serves its own.
        client = root / "socket.io.min.js"
        if client.is_file():
            async def serve_client(request: web.Request) -> web.FileResponse:
                return web.FileResponse(client)

            self.app.router.add_get("/socket.io/socket.io.js", serve_client)

    async def _healthz(self, request: web.Request) -> web.Response:
        health: dict[str, Any] = {"status": "ok", "users": len(self._sockets),
                                  "sockets": len(self._users)}
        if self._presence is not None:
            health["node"] = self._presence.node
            health["redis"] = "ok" if self._presence.healthy else "unreachable"
        return web.json_response(health)

    # -- Socket.IO -------------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict, auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        user = self.tokens.get(token) if isinstance(token, str) else None
        # The aiohttp driver's REMOTE_ADDR is a placeholder; the request knows the real peer.
        remote = getattr(environ.get("aiohttp.request"), "remote", None) or "?"
        if user is None:
            log.warning("refused a connection from %s: unknown or missing token", remote)
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        self._users[sid] = user
        self._sockets.setdefault(user.key, set()).add(sid)
        await self.sio.enter_room(sid, _room(user.key))
        if self._presence is not None:  # in the room first: then other nodes may send to it
            await self._presence.update(user.key)
        log.info("user %r (%s) connected from %s, sid %s", user.user_id, user.username,
                 remote, sid)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        user = self._users.pop(sid, None)
        if user is None:
            return
        sids = self._sockets.get(user.key)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._sockets[user.key]
        if self._presence is not None:
            await self._presence.update(user.key)
        log.info("user %r disconnected, sid %s (%s)", user.user_id, sid, reason)

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> None:
        # Not an error reply: a newer client may send events this relay does not know.
        log.warning("dropped unknown event %.64r from sid %s", event, sid)

    def _handler(self, event: str):
        async def handle(sid: str, *args: Any) -> None:
            try:
                await self._relay(event, sid, args)
            except Exception:  # a handler error must never take the relay or the client down
                log.exception("failed to relay %s from sid %s", event, sid)

        return handle

    async def _relay(self, event: str, sid: str, args: tuple) -> None:
        sender = self._users.get(sid)
        if sender is None:
            return
        if len(args) != 1 or not isinstance(args[0], dict):
            return await self._drop(sid, sender, event, BAD_REQUEST,
                                    f"{event}: payload must be one object with 'to'")
        payload = args[0]
        to: protocol.PeerId | None
        problem: str | None
        try:
            to = protocol.parse_peer_id(payload.get("to"), "to", event)
        except protocol.ProtocolError as exc:
            to, problem = None, str(exc)
        else:
            problem = None
        size = _encoded_size(payload)
        if size is None:
            return await self._drop(sid, sender, event, BAD_REQUEST,
                                    f"{event}: payload is not plain JSON", to)
        if size > self.max_payload:
            return await self._drop(sid, sender, event, TOO_LARGE,
                                    f"{event}: payload is {size} bytes, over the "
                                    f"{self.max_payload} byte limit", to)
        if problem is not None:
            return await self._drop(sid, sender, event, BAD_REQUEST, problem)
        target = str(to)
        if not await self._online(target):
            return await self._drop(sid, sender, event, OFFLINE,
                                    f"user {to!r} is not connected", to)

        # The sender may not name itself: `from`/`fromUsername` are always the relay's.
        out = {k: v for k, v in payload.items() if k not in ("to", "from", "fromUsername")}
        out["from"] = sender.user_id
        if event != protocol.ICE_CANDIDATE:  # PROTOCOL.md: candidates carry `from` only
            out["fromUsername"] = sender.username
        await self.sio.emit(event, out, room=_room(target))

    async def _online(self, user_key: str) -> bool:
        if user_key in self._sockets:
            return True
        # With Redis the user may be connected to another node.
        return self._presence is not None and await self._presence.online(user_key)

    async def _drop(self, sid: str, sender: User, event: str, code: str, message: str,
                    to: protocol.PeerId | None = None) -> None:
        log.warning("dropped %s from user %r (sid %s): %s: %s",
                    event, sender.user_id, sid, code, message)
        error: dict[str, Any] = {"code": code, "message": message}
        if to is not None:
            error["to"] = to
        await self.sio.emit(protocol.ERROR, error, to=sid)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port) and return the relay's URL."""
        await self._join_cluster()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            await self._leave_cluster()
            raise
        bound_port = self._runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is None:
            return  # never started, or already stopped: stopping twice is harmless
        # Say goodbye on every socket and let the transports finish: aiohttp's own shutdown
        # would otherwise wait its full timeout on each open websocket.
        for sid in list(self._users):
            with contextlib.suppress(Exception):
                await self.sio.disconnect(sid)
        with contextlib.suppress(asyncio.TimeoutError):
            # Bounded: a polling-only client may hold a long-poll open for a while yet.
            await asyncio.wait_for(self._no_requests.wait(), 1.0)
        await self._leave_cluster()
        await self.sio.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _join_cluster(self) -> None:
        """With Redis: listen to the other nodes, then announce this one. Before any client
        can connect, so that nobody is shown online on a node that would miss their events."""
        if self._manager is None or self._presence is None:
            return
        from .cluster import redacted

        where = redacted(self._presence.url)
        try:
            await self._presence.ping()  # fails fast, with Redis's own reason
            self._manager.initialize()
            await asyncio.wait_for(self._manager.listening.wait(), JOIN_TIMEOUT)
            await self._presence.start()
        except Exception as exc:
            await self._leave_cluster()
            reason = ("no answer in time" if isinstance(exc, asyncio.TimeoutError)
                      else f"{type(exc).__name__}: {exc}")
            raise RelayError(f"cannot use Redis at {where}: {reason}") from None
        log.info("relay node %s joined the nodes sharing Redis at %s", self._presence.node, where)

    async def _leave_cluster(self) -> None:
        if self._presence is not None:
            await self._presence.stop()
        if self._manager is not None:
            await self._manager.close()


@contextlib.asynccontextmanager
async def running_relay(
    tokens: Mapping[str, Mapping[str, Any]] | Mapping[str, User],
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> AsyncIterator[Relay]:
    """A started Relay for the duration of the block; `options` go to Relay()."""
    relay = Relay(tokens, **options)
    await relay.start(host, port)
    try:
        yield relay
    finally:
        await relay.stop()


# -- command line ----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kioskd-relay", description="Reference signaling relay for kioskd (PROTOCOL.md)."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument("--tokens", required=True, metavar="FILE",
                        help='JSON file: {"<token>": {"userId": ..., "username": ...}}')
    parser.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD, metavar="BYTES",
                        help="largest event payload relayed (default %(default)s)")
    parser.add_argument("--redis", metavar="URL",
                        help="share users across relay nodes through Redis")
    parser.add_argument("--presence-ttl", type=float, default=DEFAULT_PRESENCE_TTL,
                        metavar="SECONDS",
                        help="with --redis: how long users of a node that died may still look "
                             "online (default %(default)s)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.max_payload <= 0:
        parser.error("--max-payload must be a positive number of bytes")
    if not 1 <= args.presence_ttl <= 600:  # also refuses nan
        parser.error("--presence-ttl must be 1 to 600 seconds")
    return args


async def _serve(args: argparse.Namespace, tokens: dict[str, User]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    relay = Relay(tokens, max_payload=args.max_payload, redis_url=args.redis,
                  presence_ttl=args.presence_ttl)
    url = await relay.start(args.host, args.port)
    try:
        # Printed, not logged, so that it shows at any log level for whoever waits on it.
        print(f"kioskd-relay listening on {url}", flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        await relay.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.redis and not _redis_available():
        print(f"kioskd-relay: {REDIS_MISSING}", file=sys.stderr)
        return 2
    try:
        tokens = load_tokens(args.tokens)
    except TokensError as exc:
        print(f"kioskd-relay: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args, tokens))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return 130
    except RelayError as exc:  # e.g. Redis cannot be reached
        print(f"kioskd-relay: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the port is taken
        print(f"kioskd-relay: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except Exception:
        log.exception("kioskd-relay stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
