"""A private coturn (Debian's `coturn` package) for one test: TURN over UDP and TCP on a
loopback address of the suite's own network namespace, with a shared secret
(`use-auth-secret`), stopped by PID afterwards."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import stop_process

INSTALL_HINT = "coturn is not installed (scripts/setup.sh --test installs it)"
HOST = "127.0.0.2"  # aioice gathers no host candidate on 127.0.0.1


@dataclass
class Turn:
    host: str
    port: int
    secret: str
    log: Path

    def urls(self) -> list[str]:
        return [f"turn:{self.host}:{self.port}?transport=udp",
                f"turn:{self.host}:{self.port}?transport=tcp"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_coturn(folder: Path, secret: str = "turn-shared-secret") -> Iterator[Turn]:
    port = _free_port()
    log = folder / "turnserver.log"
    process = subprocess.Popen(
        [shutil.which("turnserver") or "turnserver", "-n", "--listening-ip", HOST,
         "--relay-ip", HOST, "--listening-port", str(port), "--min-port", "49160",
         "--max-port", "49200", "--use-auth-secret", "--static-auth-secret", secret,
         "--realm", "kiosk.test", "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
         "--userdb", str(folder / "turndb"), "--verbose",  # its own database, never /var/lib
         "--log-file", str(log), "--simple-log", "--pidfile", str(folder / "turnserver.pid")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # TCP accepts once the server listens (nothing to wait on otherwise)
            with socket.socket() as probe:
                if probe.connect_ex((HOST, port)) == 0:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("coturn did not start:\n" + log.read_text(errors="replace")
                                   if log.exists() else "coturn did not start")
            time.sleep(0.05)
        yield Turn(HOST, port, secret, log)
    finally:
        stop_process(process)
