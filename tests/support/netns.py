"""Run the test session inside a private network namespace that has only loopback.

WebRTC tests must never let ICE touch the machine's real interfaces. `unshare -n` gives the
session a namespace of its own; loopback comes up with 127.0.0.2 added, because aioice never
gathers 127.0.0.1 and so needs another loopback address for a host candidate.

    python -m tests.support.netns COMMAND...   # run any command inside such a namespace
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import ifaddr

MARKER = "KIOSKD_PRIVATE_NETNS"


def in_private_netns() -> bool:
    """True when the only interface is loopback, it is up, and it carries 127.0.0.2."""
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        return False
    with open("/sys/class/net/lo/flags") as flags:
        if not int(flags.read(), 16) & 0x1:  # IFF_UP
            return False
    # aioice gathers the interfaces' addresses (not routes): 127.0.0.2 must be assigned.
    addresses = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips]
    return "127.0.0.2" in addresses


def can_create() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("ip") is not None


def reexec_inside(argv: list[str]) -> None:
    """Replace this process with `argv` run inside a fresh private namespace."""
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ, **{MARKER: "1"})
    os.execvpe("unshare", ["unshare", "--net", "--", sys.executable, "-m", "tests.support.netns",
                           *argv], env)


def run_module_inside(module: str) -> None:
    """For a `python -m MODULE` command (the benchmarks): make sure it runs in a private
    namespace, re-executing itself there if it is not; exits with a reason if it can't."""
    if in_private_netns():
        return
    if not can_create():
        sys.exit(f"{module}: needs root to make a private network namespace")
    reexec_inside([sys.executable, "-m", module, *sys.argv[1:]])


def _inside(argv: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "replace", "127.0.0.2/8", "dev", "lo"], check=True)
    if not in_private_netns():
        print("netns: could not set up a loopback-only namespace", file=sys.stderr)
        return 1
    os.execvp(argv[0], argv)
    return 1  # not reached


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if os.environ.get(MARKER) == "1":  # we are the process reexec_inside() started
        sys.exit(_inside(sys.argv[1:]))
    # Called by hand: make the namespace first.
    if not can_create():
        print("netns: needs root, unshare and ip (iproute2)", file=sys.stderr)
        sys.exit(2)
    reexec_inside(sys.argv[1:])
