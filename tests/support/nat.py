"""A kiosk behind a NAT, a caller behind another, signaling and TURN on a "public" network.

All of it is made of network namespaces created here and joined by veth pairs to each other
only (nothing touches the machine's initial namespace), with documentation addresses:

    kiosk ── impair ── kiosk NAT ──┐              ┌── caller NAT ── caller
    192.0.2.2  (bridge)  192.0.2.1 │   public     │ 198.51.100.1   198.51.100.2
                          203.0.113.2 ─ .1  .5 ─ 203.0.113.6
                                    relay + coturn on 203.0.113.10

- public: the signaling relay (kioskd-relay) and coturn on 203.0.113.10; it forwards nothing
  between the two NATs (a forward chain that drops all), so media must take the TURN relay.
  Its default route leads into a silent dead end: coturn drops a whole
  allocation when one relayed sendto() fails, as it would with ENETUNREACH for a private
  candidate address.
- the NATs masquerade their private side and drop UDP sent to them that belongs to no mapping,
  silently (no ICMP unreachable for coturn to take as fatal). Rules go in over nf_tables
  netlink with pyroute2 (no iptables or nft binary needed).
- impair: a user-space bridge (tests/support/impair.py) between the kiosk and its NAT: delay,
  jitter, loss, and the kiosk's link taken down (its carrier goes) and up.

`nat_topology()` builds it and starts the relay and coturn; `running_kioskd()` runs the real
daemon in the kiosk's namespace; `CallerThread` runs a TURN-using ScriptedCaller on an event
loop of its own in a thread that has entered the caller's namespace. Everything is stopped by
PID and every namespace removed when the blocks end, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.support import impair as impair_module
from tests.support import netns
from tests.support.kioskd_process import KioskDaemon, kioskd_inside
from tests.support.processes import stop_process

T = TypeVar("T")

SERVICES = "203.0.113.10"  # relay and coturn, on the public namespace's loopback
KIOSK_ADDRESS, KIOSK_GATEWAY = "192.0.2.2", "192.0.2.1"
CALLER_ADDRESS, CALLER_GATEWAY = "198.51.100.2", "198.51.100.1"
KIOSK_NAT_PUBLIC, CALLER_NAT_PUBLIC = "203.0.113.2", "203.0.113.6"
RELAY_PORT, TURN_PORT = 8080, 3478
TURN_SECRET = "nat-test-turn-secret"
TOKENS = {
    "kiosk-secret": {"userId": "kiosk", "username": "Lobby kiosk"},
    "alice-secret": {"userId": "alice", "username": "Alice"},
}
CLONE_NEWNET = 0x40000000
IMPAIR_SCRIPT = Path(impair_module.__file__).resolve()
COTURN_HINT = "coturn is not installed (scripts/setup.sh --test installs it)"


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def enter_namespace(name: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
    finally:
        os.close(fd)


def in_namespace(name: str, work: Callable[[], T]) -> T:
    """Run `work` in a short-lived thread inside the namespace; its result or its error."""
    result: Future[T] = Future()

    def body() -> None:
        try:
            enter_namespace(name)
            result.set_result(work())
        except BaseException as exc:  # handed to the caller
            result.set_exception(exc)
    thread = threading.Thread(target=body, name=f"in {name}")
    thread.start()
    thread.join()
    return result.result()


@dataclass
class Namespace:
    name: str

    def inside(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def ip(self, *argv: str) -> None:
        _run(*self.inside("ip", *argv))

    def sysctl(self, key: str, value: str) -> None:
        _run(*self.inside("sysctl", "-qw", f"{key}={value}"))


# -- nf_tables over netlink ---------------------------------------------------------------


def _udp() -> list[dict[str, Any]]:
    from pyroute2.nftables.expressions import genex

    return [genex("payload", {"dreg": 1, "base": 1, "offset": 9, "len": 1}),  # IPv4 protocol
            genex("cmp", {"sreg": 1, "op": 0, "data": {"attrs": [("NFTA_DATA_VALUE", b"\x11")]}})]


def _nat_rules(private: str) -> Callable[[], None]:
    """Masquerade `private` going out; drop UDP to the NAT itself (no mapping) silently."""
    def apply() -> None:
        from pyroute2.nftables.expressions import ipv4addr, masq, verdict
        from pyroute2.nftables.main import NFTables

        nft = NFTables(nfgen_family=2)
        try:
            nft.table("add", name="nat")
            nft.chain("add", table="nat", name="postrouting", hook="postrouting", type="nat",
                      priority=100)
            nft.rule("add", table="nat", chain="postrouting",
                     expressions=(ipv4addr(src=private), masq()))
            nft.chain("add", table="nat", name="input", hook="input", type="filter", priority=0)
            nft.rule("add", table="nat", chain="input", expressions=(_udp(), verdict(code=0)))
        finally:
            nft.close()
    return apply


def _forward_nothing() -> None:
    from pyroute2.nftables.main import NFTables

    nft = NFTables(nfgen_family=2)
    try:
        nft.table("add", name="public")
        nft.chain("add", table="public", name="forward", hook="forward", type="filter",
                  priority=0, policy=0)  # policy drop, no rules
    finally:
        nft.close()


# -- the impaired link ---------------------------------------------------------------------


class Impairment:
    """The forwarder between the kiosk and its NAT (tests/support/impair.py), and the kiosk's
    link: `down()` takes the carrier away (the kiosk's interface says NO-CARRIER, as when
    Wi-Fi drops) and `up()` brings it back."""

    def __init__(self, namespace: Namespace, ends: tuple[str, str], kiosk_side: str,
                 seed: int) -> None:
        self.namespace = namespace
        self.kiosk_side = kiosk_side  # the forwarder's end facing the kiosk
        self.process = subprocess.Popen(
            namespace.inside(sys.executable, str(IMPAIR_SCRIPT), *ends, "--seed", str(seed)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._reply(10)

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("the impairment forwarder did not answer")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"impairment: {reply.get('error')}")
        return reply

    def set(self, **settings: Any) -> dict[str, Any]:
        """delay_ms, jitter_ms, loss (0..1), down (drop all, carrier kept); returns the
        forwarder's counters."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(settings) + "\n")
        self.process.stdin.flush()
        return self._reply(5)

    def down(self) -> None:
        self.namespace.ip("link", "set", self.kiosk_side, "down")

    def up(self) -> None:
        self.namespace.ip("link", "set", self.kiosk_side, "up")

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the forwarder ends when its stdin does
        try:
            self.process.wait(3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- the topology ----------------------------------------------------------------------------


@dataclass
class NatTopology:
    public: Namespace
    kiosk: Namespace
    caller: Namespace
    kiosk_nat: Namespace
    caller_nat: Namespace
    link: Impairment
    folder: Path
    relay_url: str = f"http://{SERVICES}:{RELAY_PORT}"
    turn_host: str = SERVICES
    turn_port: int = TURN_PORT
    turn_secret: str = TURN_SECRET
    turn_log: Path = field(default_factory=Path)

    def turn_url(self, transport: str) -> str:
        return f"turn:{self.turn_host}:{self.turn_port}?transport={transport}"


def _veth(tag: str, a: tuple[Namespace, str], b: tuple[Namespace, str],
          plain_ends: tuple[str, ...] = ()) -> None:
    """A veth pair between two namespaces; offloads off on the named ends (made in this
    namespace first, so the ethtool ioctl reaches them, then moved)."""
    (ns_a, name_a), (ns_b, name_b) = a, b
    tmp_a, tmp_b = f"ta{tag}", f"tb{tag}"
    _run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    try:
        for tmp, name in ((tmp_a, name_a), (tmp_b, name_b)):
            if name in plain_ends:
                impair_module.disable_offloads(tmp)
        _run("ip", "link", "set", tmp_a, "netns", ns_a.name, "name", name_a)
        _run("ip", "link", "set", tmp_b, "netns", ns_b.name, "name", name_b)
    except BaseException:
        subprocess.run(["ip", "link", "del", tmp_a], capture_output=True)
        raise
    for ns, name in ((ns_a, name_a), (ns_b, name_b)):
        ns.ip("link", "set", name, "up")


def _build(tag: str, public: Namespace, kiosk_nat: Namespace, impair: Namespace,
           kiosk: Namespace, caller_nat: Namespace, caller: Namespace) -> None:
    for ns in (public, kiosk_nat, impair, kiosk, caller_nat, caller):
        _run("ip", "netns", "add", ns.name)
        ns.ip("link", "set", "lo", "up")
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")  # no IPv6 chatter on the links
    # The bridge's four ends carry frames through user space: no offloads there.
    _veth(tag + "1", (public, "pub-k"), (kiosk_nat, "wan"))
    _veth(tag + "2", (public, "pub-c"), (caller_nat, "wan"))
    _veth(tag + "3", (kiosk_nat, "lan"), (impair, "to-nat"), plain_ends=("lan", "to-nat"))
    _veth(tag + "4", (impair, "to-kiosk"), (kiosk, "eth0"), plain_ends=("to-kiosk", "eth0"))
    _veth(tag + "5", (caller_nat, "lan"), (caller, "eth0"))

    public.ip("addr", "add", f"{SERVICES}/32", "dev", "lo")
    public.ip("addr", "add", "203.0.113.1/30", "dev", "pub-k")
    public.ip("addr", "add", "203.0.113.5/30", "dev", "pub-c")
    # The dead end: a veth whose other end (also here, with no address) drops frames that
    # are not for its MAC; a permanent neighbour entry so that no ARP failure reports an
    # unreachable host to the sender. (This kernel has no dummy interfaces.)
    public.ip("link", "add", "dead-end", "type", "veth", "peer", "name", "dead-end-far")
    public.ip("link", "set", "dead-end-far", "up")
    public.ip("link", "set", "dead-end", "up")
    public.ip("addr", "add", "203.0.113.253/30", "dev", "dead-end")
    public.ip("neigh", "add", "203.0.113.254", "lladdr", "02:00:00:00:00:01", "dev",
              "dead-end", "nud", "permanent")
    public.ip("route", "add", "default", "via", "203.0.113.254")
    public.sysctl("net.ipv4.ip_forward", "1")
    in_namespace(public.name, _forward_nothing)

    for nat, wan, gateway, lan, private in (
            (kiosk_nat, f"{KIOSK_NAT_PUBLIC}/30", "203.0.113.1", f"{KIOSK_GATEWAY}/24",
             "192.0.2.0/24"),
            (caller_nat, f"{CALLER_NAT_PUBLIC}/30", "203.0.113.5", f"{CALLER_GATEWAY}/24",
             "198.51.100.0/24")):
        nat.ip("addr", "add", wan, "dev", "wan")
        nat.ip("route", "add", "default", "via", gateway)
        nat.ip("addr", "add", lan, "dev", "lan")
        nat.sysctl("net.ipv4.ip_forward", "1")
        in_namespace(nat.name, _nat_rules(private))

    for ns, address, gateway in ((kiosk, KIOSK_ADDRESS, KIOSK_GATEWAY),
                                 (caller, CALLER_ADDRESS, CALLER_GATEWAY)):
        ns.ip("addr", "add", f"{address}/24", "dev", "eth0")
        ns.ip("route", "add", "default", "via", gateway)


def _wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            break
        line = process.stdout.readline()
        if not line:
            break
        if needle in line:
            return line
    raise RuntimeError(f"no {needle!r} in {timeout} s (exit status {process.poll()})")


@contextlib.contextmanager
def _coturn(public: Namespace, folder: Path) -> Iterator[Path]:
    log = folder / "turnserver.log"
    process = subprocess.Popen(
        public.inside(shutil.which("turnserver") or "turnserver", "-n",
                      "--listening-ip", SERVICES, "--relay-ip", SERVICES,
                      "--listening-port", str(TURN_PORT), "--min-port", "49160",
                      "--max-port", "49400", "--use-auth-secret",
                      "--static-auth-secret", TURN_SECRET, "--realm", "kiosk.test",
                      "--no-tls", "--no-dtls", "--no-cli", "--userdb", str(folder / "turndb"),
                      "--verbose",
                      "--log-file", str(log), "--simple-log",
                      "--pidfile", str(folder / "turnserver.pid")),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            import socket
            with socket.socket() as probe:
                return probe.connect_ex((SERVICES, TURN_PORT)) == 0
        deadline = time.monotonic() + 10
        while not in_namespace(public.name, listening):  # TCP accepts once it listens
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("coturn did not start: " + (
                    log.read_text(errors="replace")[-2000:] if log.exists() else "no log"))
            time.sleep(0.05)
        yield log
    finally:
        stop_process(process)


@contextlib.contextmanager
def _relay(public: Namespace, folder: Path) -> Iterator[None]:
    tokens = folder / "relay-tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    with (folder / "relay.log").open("w") as log:
        process = subprocess.Popen(
            public.inside(sys.executable, "-c",
                          "import sys; from kioskd.relay.server import main; sys.exit(main())",
                          "--host", SERVICES, "--port", str(RELAY_PORT), "--tokens",
                          str(tokens), "--log-level", "warning"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            _wait_for_line(process, "listening on", 15)
            yield
        finally:
            stop_process(process)
            if process.stdout is not None:
                process.stdout.close()


@contextlib.contextmanager
def nat_topology(folder: Path, seed: int = 1) -> Iterator[NatTopology]:
    """The namespaces, the forwarder, the relay and coturn; all gone afterwards."""
    if not netns.in_private_netns():
        raise RuntimeError("topologies are built only inside the suite's private namespace")
    tag = uuid.uuid4().hex[:6]
    names = [Namespace(f"kioskd-{role}-{tag}")
             for role in ("public", "knat", "impair", "kiosk", "cnat", "caller")]
    public, kiosk_nat, impair, kiosk, caller_nat, caller = names
    link: Impairment | None = None
    try:
        _build(tag, *names)
        link = Impairment(impair, ("to-nat", "to-kiosk"), "to-kiosk", seed)
        with _coturn(public, folder) as turn_log, _relay(public, folder):
            yield NatTopology(public, kiosk, caller, kiosk_nat, caller_nat, link, folder,
                              turn_log=turn_log)
    finally:
        if link is not None:
            link.stop()
        for ns in names:  # its interfaces (and their veth peers) go with it
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


# -- the kiosk daemon in its namespace -------------------------------------------------------


@contextlib.asynccontextmanager
async def running_kioskd(net: NatTopology, folder: Path, transport: str = "udp",
                         *overrides: str) -> AsyncIterator[KioskDaemon]:
    """The kiosk behind its NAT, with coturn's shared secret for TURN over `transport`."""
    secret = folder / "turn-secret"
    secret.write_text(net.turn_secret + "\n")
    servers = (f'rtc.ice_servers=[{{ urls = ["{net.turn_url(transport)}"], '
               f'secret_file = "{secret}" }}]')
    async with kioskd_inside(net.kiosk.inside, net.relay_url, folder, "video.fps=15", servers,
                             *overrides) as daemon:
        yield daemon


# -- the caller in its namespace --------------------------------------------------------------


def turn_caller(url: str, token: str, ice_servers: list[Any]) -> Any:
    """A ScriptedCaller whose peer connections use `ice_servers` (a browser behind a NAT
    would have the web app's TURN servers)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    from tests.support import caller as caller_module

    class TurnCaller(caller_module.ScriptedCaller):
        def _new_pc(self, call_type: str) -> RTCPeerConnection:
            # ScriptedCaller makes its connection with no servers: the same, with ours.
            real = caller_module.RTCPeerConnection

            def with_servers(configuration: RTCConfiguration | None = None) -> RTCPeerConnection:
                return real(RTCConfiguration(iceServers=ice_servers))
            caller_module.RTCPeerConnection = with_servers  # type: ignore[assignment,misc]
            try:
                return super()._new_pc(call_type)
            finally:
                caller_module.RTCPeerConnection = real  # type: ignore[misc]

    return TurnCaller(url, token, answer_reoffers=True)  # as a browser does


def selected_pair(pc: Any) -> tuple[str, str] | None:
    """(local type, remote type) of the pair ICE nominated, e.g. ("relay", "relay")."""
    for transceiver in pc.getTransceivers():
        transport = transceiver.sender.transport or transceiver.receiver.transport
        if transport is None:
            continue
        nominated = transport.transport._connection._nominated.get(1)
        if nominated is not None:
            return nominated.local_candidate.type, nominated.remote_candidate.type
    return None


class CallerThread:
    """An event loop in a thread of its own inside the caller's namespace, so that every
    socket the caller opens (Socket.IO, ICE, TURN) is made there. `await run(fn)` runs the
    coroutine `fn(caller)` on that loop."""

    def __init__(self, net: NatTopology, transport: str = "udp") -> None:
        from aiortc import RTCIceServer

        from kioskd.rtc.ice import rest_credential

        username, credential = rest_credential(net.turn_secret, time.time(), name="caller")
        self._servers = [RTCIceServer(urls=[net.turn_url(transport)], username=username,
                                      credential=credential)]
        self._net = net
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="caller", daemon=True)
        self.caller: Any = None

    def _main(self) -> None:
        enter_namespace(self._net.caller.name)
        self._loop = asyncio.new_event_loop()
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()
        self._loop.close()

    async def start(self) -> None:
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, 10):
            raise RuntimeError("the caller's thread did not start")

        async def make() -> Any:
            caller = turn_caller(self._net.relay_url, "alice-secret", self._servers)
            await caller.connect()
            return caller
        self.caller = await self.run_coroutine(make())

    async def run_coroutine(self, coroutine: Awaitable[T]) -> T:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return await asyncio.wrap_future(future)

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        return await self.run_coroutine(work(self.caller))

    async def stop(self) -> None:
        if self._loop is None:
            return
        if self.caller is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.run(lambda caller: caller.close()), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)


@contextlib.asynccontextmanager
async def caller_in(net: NatTopology, transport: str = "udp") -> AsyncIterator[CallerThread]:
    thread = CallerThread(net, transport)
    try:
        await thread.start()
        yield thread
    finally:
        await thread.stop()


# -- calls and media -------------------------------------------------------------------------


async def place_call(kiosk: KioskDaemon, caller: CallerThread) -> float:
    """A call from the caller that connects with media both ways, through the relay on both
    sides; returns the seconds from the offer to connected."""
    await kiosk.wait_for(lambda status: status["signaling"] == "online"
                         and status["state"] == "idle", 15)
    offered = time.monotonic()
    await caller.run(lambda c: c.call("kiosk"))
    answer = await caller.run(lambda c: c.receive_answer(timeout=10))
    await caller.run(lambda c: asyncio.wait_for(c.connected.wait(), 10))
    set_up = time.monotonic() - offered
    sdp = answer["answer"]["sdp"]
    assert "typ relay" in sdp, sdp
    # The pair ICE chose: the caller's relay to the kiosk's relay (no other path exists).
    assert await caller.run(lambda c: resolved(selected_pair(c.pc))) == ("relay", "relay")
    await caller.run(lambda c: c.sink.wait_for_frames(video=5, audio=10, timeout=10))
    await kiosk.wait_for(lambda status: status["state"] == "connected"
                         and status["call"]["media"].get("video_frames", 0) >= 5
                         and status["call"]["media"].get("audio_frames", 0) >= 10, 10)
    return set_up


async def resolved(value: T) -> T:
    """`value`, as a coroutine: for `CallerThread.run` to read the caller's state on its loop."""
    return value


async def media_counts(kiosk: KioskDaemon, caller: CallerThread) -> tuple[int, int, int, int]:
    """Frames received so far: (caller video, caller audio, kiosk video, kiosk audio)."""
    status = await kiosk.status()
    media = (status.get("call") or {}).get("media") or {}
    seen = await caller.run(lambda c: resolved((c.sink.video_frames, c.sink.audio_frames)))
    return (*seen, media.get("video_frames", 0), media.get("audio_frames", 0))


async def media_flowing_again(kiosk: KioskDaemon, caller: CallerThread, timeout: float) -> float:
    """When both ends have received new video and audio after now."""
    before = await media_counts(kiosk, caller)
    deadline = time.monotonic() + timeout
    while True:
        now = await media_counts(kiosk, caller)
        # A count that went down restarted: the call goes on over a new connection (the
        # kiosk's re-offer), whose counts begin at zero.
        before = tuple(min(start, after) for start, after in zip(before, now, strict=True))
        if all(after >= start + need for after, start, need
               in zip(now, before, (3, 10, 3, 10), strict=True)):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"media not back in {timeout} s: {before} -> {now}")
        await asyncio.sleep(0.05)
