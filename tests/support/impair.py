"""A link made worse in user space: delay, jitter, loss, and a link that goes down and up.

This kernel has no `sch_netem`, so the impairment is a small forwarder run in a namespace of
its own in the middle of a link: it reads every Ethernet frame arriving on one end over an
AF_PACKET socket and writes it out of the other end, later (delay +- jitter, uniform, so
frames can overtake each other as on netem) or never (loss, or while the link is down). It is
seeded, so a run can be repeated. Being a bridge, it is invisible to IP: ARP, TCP and UDP pass
as they would on a wire.

Run it as a subprocess in that namespace (`Impairment` does):

    python impair.py END_A END_B --seed N

and steer it with JSON lines on its stdin, each answered by one JSON line on stdout:

    {"delay_ms": 40, "jitter_ms": 15, "loss": 0.02}   -> {"ok": true, "forwarded": ..., ...}
    {"down": true}      (drop everything: a silent outage; carrier loss is `ip link set down`)
    {}                  (just the counters)

Frames are copied as they are, so the ends that send into the forwarder must compute their
own checksums and segment their own TCP: `disable_offloads()` turns the veth's offloads off
(with the ethtool ioctl, before the end is moved into its namespace).

Standalone on purpose (only the standard library): it is executed as a script by path.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import fcntl
import json
import random
import socket
import struct
import sys
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent: not ours to forward
MAX_FRAME = 65536

# linux/ethtool.h: the legacy one-value commands, struct ethtool_value {u32 cmd; u32 data}.
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM, ETHTOOL_SSG, ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO = (
    0x17, 0x19, 0x1F, 0x24, 0x2C)


def disable_offloads(ifname: str) -> None:
    """Checksums computed and TCP segmented by the stack, not left to the (virtual) device:
    a veth hands its peer frames with partial checksums and 64 KiB TCP segments otherwise,
    which a user-space forwarder would pass on broken. Acts on an interface of the calling
    thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for command in (ETHTOOL_SGRO, ETHTOOL_SGSO, ETHTOOL_STSO, ETHTOOL_SSG, ETHTOOL_STXCSUM):
            value = array.array("I", [command, 0])
            request = struct.pack("16sP16x", ifname.encode(), value.buffer_info()[0])
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)


@dataclass
class Settings:
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    down: bool = False
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("forwarded", "lost", "down_dropped", "send_errors"), 0))

    def update(self, request: dict) -> None:
        if "delay_ms" in request:
            self.delay_s = float(request["delay_ms"]) / 1000
        if "jitter_ms" in request:
            self.jitter_s = float(request["jitter_ms"]) / 1000
        if "loss" in request:
            loss = float(request["loss"])
            if not 0 <= loss <= 1:
                raise ValueError("loss is a fraction from 0 to 1")
            self.loss = loss
        if "down" in request:
            self.down = bool(request["down"])


class Forwarder:
    def __init__(self, ends: tuple[str, str], seed: int) -> None:
        self.settings = Settings()
        self.random = random.Random(seed)
        self.sockets = []
        for name in ends:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((name, ETH_P_ALL))
            sock.setblocking(False)
            self.sockets.append(sock)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        a, b = self.sockets
        loop.add_reader(a.fileno(), self._forward, loop, a, b)
        loop.add_reader(b.fileno(), self._forward, loop, b, a)

    def _forward(self, loop: asyncio.AbstractEventLoop, source: socket.socket,
                 target: socket.socket) -> None:
        settings, counters = self.settings, self.settings.counters
        while True:
            try:
                frame, address = source.recvfrom(MAX_FRAME)
            except BlockingIOError:
                return
            except OSError:  # ENETDOWN once after the end went down: it listens again on up
                return
            if address[2] == PACKET_OUTGOING:
                continue
            if settings.down:
                counters["down_dropped"] += 1
                continue
            if settings.loss and self.random.random() < settings.loss:
                counters["lost"] += 1
                continue
            delay = settings.delay_s
            if settings.jitter_s:
                delay += self.random.uniform(-settings.jitter_s, settings.jitter_s)
            if delay > 0:
                loop.call_later(delay, self._send, target, frame)
            else:
                self._send(target, frame)

    def _send(self, target: socket.socket, frame: bytes) -> None:
        try:
            target.send(frame)
            self.settings.counters["forwarded"] += 1
        except OSError:  # the far end is down, or its queue is full: a lost frame
            self.settings.counters["send_errors"] += 1


async def serve(forwarder: Forwarder) -> None:
    loop = asyncio.get_running_loop()
    forwarder.start(loop)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ok": True, "ready": True}), flush=True)
    while line := await reader.readline():
        try:
            forwarder.settings.update(json.loads(line))
            reply = {"ok": True, **forwarder.settings.counters}
        except (ValueError, TypeError, AttributeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        print(json.dumps(reply), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ends", nargs=2, help="the two interfaces to forward between")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(Forwarder(tuple(args.ends), args.seed)))  # ends when stdin closes
    return 0


if __name__ == "__main__":
    sys.exit(main())
