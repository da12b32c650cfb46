"""The amd64 kiosk booted under systemd as PID 1 (systemd-nspawn -b --private-network): the
kiosk provisioned through the boot partition's folder, kioskd.service active through
Type=notify with its hardening and credential, registered with a relay in the same container,
and called by a scripted caller there. Everything the container does stays in its own network
namespace; the boot runs on a throwaway overlay of the built root file system."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.image.conftest import rootfs

pytestmark = [pytest.mark.image, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
INSIDE = Path(__file__).parent / "inside"
BOOT_TIMEOUT_S = 300


@pytest.fixture
def booted(tmp_path) -> dict:
    lower = rootfs("amd64")
    merged, upper, work = tmp_path / "root", tmp_path / "upper", tmp_path / "work"
    for folder in (merged, upper, work):
        folder.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        results = tmp_path / "results"
        results.mkdir()
        _prepare(merged)
        log = tmp_path / "console.log"
        with open(log, "w") as console:
            container = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "-D", str(merged), "-b", "--private-network",
                 "--register=no", "--keep-unit", "--console=pipe",
                 f"--bind={results}:/boottest-results", "--machine=kioskd-boottest"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
            try:
                container.wait(BOOT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                container.send_signal(signal.SIGKILL)
                container.wait()
        found = results / "results.json"
        if not found.exists():
            pytest.fail("the boot test wrote no results; the console said:\n"
                        + log.read_text(errors="replace")[-6000:])
        return {"results": json.loads(found.read_text()), "root": merged,
                "boot_folder": upper / "boot/firmware/kioskd"}
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def _prepare(root: Path) -> None:
    """What an admin drops on the boot partition, and the test's own relay and runner."""
    boot = root / "boot/firmware/kioskd"
    shutil.copy(INSIDE / "kioskd.toml", boot / "kioskd.toml")
    shutil.copy(INSIDE / "token", boot / "token")
    tests = root / "opt/boottest"
    (tests / "tests/support").mkdir(parents=True)
    for name in ("boottest.py", "tokens.json"):
        shutil.copy(INSIDE / name, tests / name)
    for name in ("__init__.py", "support/__init__.py", "support/caller.py"):
        shutil.copy(ROOT / "tests" / name, tests / "tests" / name)
    units = root / "etc/systemd/system"
    wants = units / "multi-user.target.wants"
    for unit in ("boottest.service", "boottest-relay.service", "boottest-net.service"):
        shutil.copy(INSIDE / unit, units / unit)
        os.symlink(f"/etc/systemd/system/{unit}", wants / unit)


def test_kioskd_boots_provisioned_and_answers_a_call(booted):
    found = booted["results"]
    assert found["kioskd_active"], found["journal"]
    assert found["online"], found["journal"]
    unit = dict(line.split("=", 1) for line in found["unit"].splitlines() if "=" in line)
    assert unit["Type"] == "notify" and unit["ActiveState"] == "active"
    assert unit["NRestarts"] == "0" and unit["User"] == "kioskd"
    assert unit["NoNewPrivileges"] == "yes" and unit["ProtectSystem"] == "strict"
    assert found["credentials"] == ["kioskd-token"]  # LoadCredential=, read by kioskd
    assert found["token_file_setting"] == ""

    status = found["status_before"]["status"]
    assert status["kiosk"] == "Boot-test kiosk" and status["signaling"] == "online"
    assert "Boot-test kiosk: idle, signaling online" in found["status_text"]["out"]

    call = found["call"]
    assert "error" not in call, call
    assert call["answered_by"] == "kiosk"
    assert call["video_frames"] >= 10 and call["audio_frames"] >= 25
    assert call["stamps_decoded"] > 0  # the kiosk's synthetic camera, end to end
    assert call["status"]["status"]["state"] == "connected"
    assert found["idle_again"]
    assert found["calls"]["calls"][0]["outcome"] == "answered"
    assert found["failed_units"].strip() == "", found["failed_units"]


def test_provisioning_took_the_files_and_the_secret_left_the_boot_partition(booted):
    found = booted["results"]
    assert "ActiveState=inactive" in found["provision_unit"]  # a oneshot that has run
    assert "Result=success" in found["provision_unit"]
    assert found["token_mode"] == "0o600"
    assert "token" not in found["boot_folder"] and "kioskd.toml" not in found["boot_folder"]
    assert "PROVISIONED.txt" in found["boot_folder"]
    assert "ERROR.txt" not in found["boot_folder"]
