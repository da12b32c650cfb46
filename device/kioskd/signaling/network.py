"""Watching the machine's network: links, addresses and routes that come and go (netlink).

The signaling connection is one TCP connection. When the kiosk's address changes (a new DHCP
lease, another access point) that connection is dead, but nothing says so until Engine.IO's
ping timeout, up to ~45 s later; when a link comes back, the reconnect loop may be in the
middle of a backoff delay. The kernel announces every such change on its routing netlink
socket: pyroute2 reads and parses it, off nothing but the event loop's own reader callback
(the socket is non-blocking and the messages are small).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# What changed, by netlink message: the reconnect loop only needs to know that it did.
EVENTS = ("RTM_NEWLINK", "RTM_DELLINK", "RTM_NEWADDR", "RTM_DELADDR", "RTM_NEWROUTE",
          "RTM_DELROUTE")


class NetworkWatch:
    def __init__(self, on_change: Callable[[str], None]) -> None:
        self.on_change = on_change
        self._socket: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Listen from now on; a machine that refuses netlink is logged once and ignored
        (the reconnect loop still works, only slower)."""
        try:
            from pyroute2 import IPRSocket
            from pyroute2.netlink.rtnl import (
                RTMGRP_IPV4_IFADDR,
                RTMGRP_IPV4_ROUTE,
                RTMGRP_IPV6_IFADDR,
                RTMGRP_IPV6_ROUTE,
                RTMGRP_LINK,
            )

            sock = IPRSocket()
            sock.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
                      | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)
        except Exception as exc:
            log.warning("cannot watch the network (netlink: %r): a changed address is noticed "
                        "only when the signaling connection times out", exc)
            return
        self._socket = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            messages = self._socket.get()
        except OSError as exc:  # the receive buffer overflowed: pyroute2 says start afresh
            log.debug("netlink: %r; listening again", exc)
            self.stop()
            self.start()
            self.on_change("overflow")
            return
        for event in dict.fromkeys(m.get("event") for m in messages):
            if event in EVENTS:
                self.on_change(event)

    def stop(self) -> None:
        if self._socket is not None and self._loop is not None:
            self._loop.remove_reader(self._socket.fileno())
            self._socket.close()
        self._socket = None


def address_alive(address: str) -> bool:
    """Whether `address` is still one of this machine's (False after a roam)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return True


# struct tcp_info (linux/tcp.h): u8 state, ca_state, retransmits, ... ; `retransmits` counts
# the retransmission timeouts in a row that no acknowledgement has ended.
_TCPI_RETRANSMITS = 2


def retransmitting(sock: socket.socket) -> int:
    """How many retransmission timeouts in a row this TCP connection is in (0: it is being
    acknowledged). Each doubles the wait for the next try: after a silent outage the next try
    may come seconds after the path is back."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return 0
    return info[_TCPI_RETRANSMITS] if len(info) > _TCPI_RETRANSMITS else 0


async def reachable(host: str, port: int, timeout: float) -> bool:
    """Whether a new TCP connection to host:port opens within `timeout` (then closed)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
