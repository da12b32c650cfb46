"""The kiosk's root file systems, built by image-build/test.sh (image-build/build-rootfs.sh),
checked and booted here. Without them (the main suite) every test here skips, saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUILT_BY = "the root file systems are built by image-build/test.sh"


def rootfs(arch: str) -> Path:
    value = os.environ.get(f"KIOSKD_ROOTFS_{arch.upper()}")
    if not value:
        pytest.skip(f"no {arch} root file system: {BUILT_BY}")
    path = Path(value)
    if not (path / "opt/kioskd/.venv/bin/kioskd").exists():
        pytest.skip(f"{path} holds no kiosk: {BUILT_BY}")
    if shutil.which("systemd-nspawn") is None:
        pytest.skip("systemd-nspawn is missing: apt-get install systemd-container")
    return path


def inside(root: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command inside the root file system (not booted; no network; an arm64 one under
    qemu-user), as root."""
    return subprocess.run(
        ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--private-network",
         "--pipe", "-D", str(root), "--", *argv],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
