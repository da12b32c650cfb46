"""systemd integration with no dependency: sd_notify datagrams and the watchdog.

The protocol is one AF_UNIX datagram of newline-separated KEY=VALUE lines sent to
$NOTIFY_SOCKET (see sd_notify(3)). Without $NOTIFY_SOCKET (not started by systemd, or a
Type= that does not listen) every call is a no-op, so the daemon runs the same anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes:
    # "@name" is a socket in the abstract namespace: its address starts with a NUL byte.
    return b"\0" + value[1:].encode() if value.startswith("@") else value


class Notifier:
    """Sends sd_notify messages; `address` defaults to $NOTIFY_SOCKET."""

    def __init__(self, address: str | None = None, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = address if address is not None else env.get("NOTIFY_SOCKET") or None
        self._sock: socket.socket | None = None
        self._failed = False
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Called on the event loop: if PID 1's queue is full, drop the message (EAGAIN,
            # logged) rather than block the loop; datagrams are never half sent.
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send one message; False if not under systemd or it could not be sent.

        A failure is logged once and never raised: health reporting must not stop the kiosk
        (if systemd stops hearing from us, its watchdog acts on that)."""
        if self._sock is None or self.address is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), _address(self.address))
        except OSError as exc:
            if not self._failed:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: systemctl start returns now."""
        return self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        """One line shown by `systemctl status`, e.g. "idle, online"."""
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """A reload begins; send ready() when it is done. MONOTONIC_USEC is what systemd >= 253
        requires for Type=notify-reload; older systemd and Type=notify ignore it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def status_line(state: str, signaling: str, peer: str = "") -> str:
    """The line `systemctl status` shows, from the call state, the signaling status and the
    peer's name (or id): "idle, online", "in call with Reception", "calling Alice, offline"."""
    who = f" {peer}" if peer else ""
    with_who = f" with{who}" if peer else ""
    text = {
        "idle": "idle",
        "ringing": f"ringing: call from{who}" if peer else "ringing",
        "calling": f"calling{who}",
        "connecting": f"connecting{with_who}",
        "connected": f"in call{with_who}",
        "recovering": f"reconnecting the call{with_who}",
        "ending": f"ending call{with_who}",
    }.get(state, state)
    # Online is the normal case: worth saying when idle, noise during a call.
    return f"{text}, {signaling}" if state == "idle" or signaling != "online" else text


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a newline would start a new KEY=VALUE field


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings: half of systemd's WatchdogSec (from $WATCHDOG_USEC), or None
    when no watchdog is set or it is meant for another process ($WATCHDOG_PID)."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1e6 if usec > 0 else None


async def watchdog_loop(notifier: Notifier, interval: float | None = None) -> None:
    """Ping systemd's watchdog every `interval` s (default: `watchdog_interval()`), forever.

    The pings come from the event loop itself, so a loop that is blocked or spinning stops
    pinging and systemd restarts the daemon. Without a watchdog this just waits to be
    cancelled, so it can run among the long-lived tasks either way."""
    if interval is None:
        interval = watchdog_interval()
    if interval is None or not notifier.enabled:
        await asyncio.Event().wait()
        return
    log.info("systemd watchdog: pinging every %.1f s", interval)
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


class Health:
    """systemd's view of the daemon as a component: ready once everything before it has
    started, the watchdog pinged from the loop while it runs, stopping first when it stops."""

    name = "health"

    def __init__(self, notifier: Notifier, status: Callable[[], str]) -> None:
        self.notifier = notifier
        self._status = status

    async def start(self) -> None:
        self.notifier.ready(self._status())

    async def run(self) -> None:
        await watchdog_loop(self.notifier)

    async def stop(self) -> None:
        self.notifier.stopping()
