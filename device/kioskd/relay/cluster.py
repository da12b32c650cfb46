"""Several relay nodes sharing one Redis: who is connected where, and the events between them.

python-socketio's Redis manager carries every relayed event to every node, which delivers it to
its own sockets of the target user. It cannot say whether the target is connected anywhere, so
presence lives in Redis beside it, in keys that expire:

    kioskd-relay:node:<node>   "1", expires after the ttl; written every ttl/3 (the heartbeat)
    kioskd-relay:user:<user>   set of the nodes where the user has a socket

A user is online when one of the nodes in their set is alive. A node that stops cleanly removes
itself at once; one that crashes is ignored as soon as its node key expires (within the ttl),
and the other nodes drop it from the user sets they read. Nothing grows without bound: user
sets expire an hour after the last live node wrote them. That hour is the same for every node
(whatever its ttl), so that one node's setting never cuts short another's users.

Imported only when the relay is given --redis: it needs the `redis` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import socketio
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

PREFIX = "kioskd-relay:"
MAX_TTL = 600.0  # seconds; keeps the heartbeat (ttl/3) well inside USER_TTL_MS
USER_TTL_MS = 3600 * 1000  # only for clean-up: liveness comes from the node keys
REDIS_TIMEOUT = 2.0  # seconds for one Redis command or connect, so a dead Redis cannot stall
LISTEN_RETRY_MAX = 5.0  # seconds between attempts to listen again after losing Redis


def _quick_retry() -> Retry:
    # redis-py retries a failed command ten times with back-off by default: seconds per relayed
    # event while Redis is down. Once is enough to replace a connection that Redis closed.
    return Retry(NoBackoff(), 1)


def redacted(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        user = f"{parts.username}:***@" if parts.username else ":***@"
        netloc = user + host + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "(unparsable Redis URL)"


def new_node_id() -> str:
    # Readable in Redis (which host and process), unique across restarts.
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisManager(socketio.AsyncRedisManager):
    """python-socketio's Redis manager, plus what a node needs to know about it: `listening`
    is set while it is subscribed (an event published before that would never reach this
    node's sockets), and `close()` stops it. It starts at `initialize()`, which the relay calls
    at start instead of waiting for the first client as python-socketio does.

    While Redis is away it logs once, not per event, and tries to listen again at least every
    LISTEN_RETRY_MAX seconds (python-socketio: up to a minute), so that a node hears the others
    again soon after a Redis restart. redis://, rediss:// and unix:// URLs."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        # One client for the node's life: redis-py reconnects its pooled connections by itself,
        # where python-socketio would build a new client after each failure.
        self.redis = aioredis.Redis.from_url(url, retry=_quick_retry(),
                                             socket_connect_timeout=REDIS_TIMEOUT)
        self.listening = asyncio.Event()
        self._initialized = False
        self._publish_failing = False

    def initialize(self) -> None:
        if not self._initialized:  # the server calls it again at the first connection
            self._initialized = True
            super().initialize()

    def _redis_connect(self) -> None:
        # Subscribe confirmations are kept: they are what says that we listen.
        self.pubsub = self.redis.pubsub()
        self.connected = True

    async def _publish(self, data: dict) -> None:
        try:
            await self.redis.publish(self.channel, self.json.dumps(data))
        except Exception as exc:
            if not self._publish_failing:
                log.warning("cannot send events to the other relay nodes (%s: %s)",
                            type(exc).__name__, exc)
            self._publish_failing = True
        else:
            if self._publish_failing:
                log.info("sending events to the other relay nodes again")
            self._publish_failing = False

    async def _redis_listen_with_retries(self):
        delay, failing = 0.5, False
        while True:
            pubsub = None
            try:
                self._redis_connect()
                pubsub = self.pubsub
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        self.listening.set()
                        if failing:
                            log.info("listening to the other relay nodes again")
                        delay, failing = 0.5, False
                    yield message
            except Exception as exc:
                log.log(logging.DEBUG if failing else logging.WARNING,
                        "not listening to the other relay nodes (%s: %s); trying again every "
                        "%.0f s at most", type(exc).__name__, exc, LISTEN_RETRY_MAX)
                failing = True
            finally:  # also when the node stops
                self.listening.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    async def close(self) -> None:
        self.listening.clear()
        task = getattr(self, "thread", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for client in (self.pubsub, self.redis):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()


class Presence:
    """This node's users in Redis, and the question "is this user connected to any node?".

    `local` is the node's own map of connected users (its keys are user keys); it is read at
    each write, so the last write always states what is true now. Writes are serialised, so
    a connect and a disconnect of the same user cannot overtake each other on the way to Redis.
    When Redis fails, the node stops asking it (every user counts as online, as with no
    presence at all) until the heartbeat gets through again and rewrites everything.
    """

    def __init__(self, url: str, local: Mapping[str, object], *,
                 ttl: float, listening: Callable[[], bool] = lambda: True,
                 node: str | None = None) -> None:
        if not 1 <= ttl <= MAX_TTL:  # also refuses nan
            raise ValueError(f"the presence ttl must be 1 to {MAX_TTL:.0f} seconds")
        self.url = url
        self.node = node or new_node_id()
        self.ttl_ms = int(ttl * 1000)
        self._local = local
        self._listening = listening  # a node that cannot hear events must not claim users
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
            retry=_quick_retry(), decode_responses=True)
        self._lock = asyncio.Lock()
        self._announced: set[str] = set()  # users that may be listed under this node
        self._healthy = False  # the last write reached Redis and the node was listening
        self._started = False
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _node_key(self, node: str) -> str:
        return f"{PREFIX}node:{node}"

    def _user_key(self, user: str) -> str:
        return f"{PREFIX}user:{user}"

    # -- life cycle --------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raises if Redis cannot be reached."""
        await self._redis.ping()

    async def start(self) -> None:
        """Announce the node and keep announcing it (once its events are heard)."""
        await self.ping()
        self._started = True
        await self.sync()
        self._heartbeat = asyncio.create_task(self._beat(), name=f"presence {self.node}")

    async def stop(self) -> None:
        """Leave: this node's users and the node itself disappear from Redis at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        async with self._lock:
            if not self._started:  # never announced anything (or already left)
                await self._close()
                return
            self._started = False
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for user in self._announced:
                        pipe.srem(self._user_key(user), self.node)
                    pipe.delete(self._node_key(self.node))
                    await pipe.execute()
            except Exception as exc:  # the keys expire by themselves
                log.warning("could not remove this node's users from Redis: %s", exc)
            self._announced.clear()
            self._healthy = False
            await self._close()

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.sync()
            except Exception:  # a dead heartbeat would take every user of the node offline
                log.exception("presence: heartbeat failed; trying again at the next one")

    # -- writes ------------------------------------------------------------------------------

    async def update(self, user: str) -> None:
        """Write whether `user` has a socket on this node now (after a connect or disconnect)."""
        async with self._lock:
            if not self._healthy:
                return  # the next heartbeat rewrites everything
            try:
                if user in self._local:
                    self._announced.add(user)
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.sadd(self._user_key(user), self.node)
                        pipe.pexpire(self._user_key(user), USER_TTL_MS)
                        await pipe.execute()
                else:
                    await self._redis.srem(self._user_key(user), self.node)
                    self._announced.discard(user)
            except Exception as exc:
                self._trouble(exc)

    async def sync(self) -> None:
        """The heartbeat: rewrite the node key and every local user, drop users who left while
        Redis could not be told. Also how the node comes back after a Redis failure."""
        async with self._lock:
            if not self._listening():
                await self._withdraw()
                return
            local = set(self._local)
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.set(self._node_key(self.node), "1", px=self.ttl_ms)
                    for user in self._announced - local:
                        pipe.srem(self._user_key(user), self.node)
                    for user in local:
                        pipe.sadd(self._user_key(user), self.node)
                        pipe.pexpire(self._user_key(user), USER_TTL_MS)
                    await pipe.execute()
            except Exception as exc:
                self._trouble(exc)
                return
            self._announced = local
            if not self._healthy:
                log.info("presence: node %s announced with %d user(s) in Redis at %s",
                         self.node, len(local), redacted(self.url))
            self._healthy = True

    async def _withdraw(self) -> None:
        # Not hearing other nodes' events: our users would miss them, so let callers be told
        # they are offline instead (other nodes ignore a node without its key).
        if self._healthy:
            log.warning("presence: this node does not hear the other nodes, so its users are "
                        "withdrawn from Redis until it does")
        self._healthy = False
        with contextlib.suppress(Exception):
            await self._redis.delete(self._node_key(self.node))

    def _trouble(self, exc: Exception) -> None:
        if self._healthy:
            log.warning("presence: Redis at %s failed (%s: %s); every user counts as online "
                        "until it answers again", redacted(self.url), type(exc).__name__, exc)
        self._healthy = False

    # -- reads -------------------------------------------------------------------------------

    async def online(self, user: str) -> bool:
        """Whether `user` has a socket on any live node. True when Redis cannot tell: the
        event is then relayed anyway and the caller's ring timeout ends a call to nobody."""
        if not self._healthy:
            return True
        key = self._user_key(user)
        try:
            # decode_responses: the members are str
            nodes = sorted(cast(set[str], await self._redis.smembers(key)))
            if not nodes:
                return False
            alive = await self._redis.mget([self._node_key(node) for node in nodes])
            dead = [node for node, mark in zip(nodes, alive, strict=True) if mark is None]
            if dead:  # crashed nodes: forget them here rather than wait for the key to expire
                await self._redis.srem(key, *dead)
            return len(dead) < len(nodes)
        except Exception as exc:
            self._trouble(exc)
            return True
