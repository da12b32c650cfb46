"""Network topologies for tests, made of namespaces the test creates and removes itself.

`joined_namespace()` makes a named network namespace joined to the suite's own (private)
namespace by a veth pair, with documentation addresses (192.0.2.0/24): a kiosk can run in it
(`ip netns exec NAME ...`) and reach servers listening on the near end. Nothing touches the
machine's initial namespace; everything goes when the block ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support import netns

NEAR, FAR = "192.0.2.1", "192.0.2.2"  # the suite's end, the namespace's end


@dataclass
class Joined:
    name: str  # the namespace: `ip netns exec NAME ...`
    far_link: str  # its end of the veth pair
    near: str = NEAR
    far: str = FAR

    def inside(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def ip(self, *argv: str) -> None:
        """An `ip` command inside the namespace, e.g. ip("addr", "add", ...)."""
        subprocess.run(self.inside("ip", *argv), check=True, capture_output=True)


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@contextlib.contextmanager
def joined_namespace() -> Iterator[Joined]:
    if not netns.in_private_netns():
        raise RuntimeError("topologies are built only inside the suite's private namespace")
    tag = uuid.uuid4().hex[:6]
    name, near_link, far_link = f"kioskd-{tag}", f"kn{tag}", f"kf{tag}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", near_link, "type", "veth", "peer", "name", far_link)
        _ip("link", "set", far_link, "netns", name)
        _ip("addr", "add", f"{NEAR}/24", "dev", near_link)
        _ip("link", "set", near_link, "up")
        joined = Joined(name, far_link)
        joined.ip("link", "set", "lo", "up")
        joined.ip("addr", "add", f"{FAR}/24", "dev", far_link)
        joined.ip("link", "set", far_link, "up")
        yield joined
    finally:
        subprocess.run(["ip", "link", "del", near_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
