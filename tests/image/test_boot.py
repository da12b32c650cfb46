"""The kiosk booted under systemd as PID 1: the amd64 root file system under systemd-nspawn
(-b --private-network), the arm64 one in a virtual machine (qemu-system-aarch64 -M virt with
Debian's arm64 kernel, no network device; under qemu-user systemd cannot run units with
credentials). Each is provisioned through the boot partition's folder, runs kioskd.service
through Type=notify with its hardening and credential, registers with a relay in the same
machine and is called by a scripted caller there. Nothing leaves the container or the virtual
machine; every boot runs on a throwaway overlay of the built root file system."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.conftest import rootfs

pytestmark = [pytest.mark.image]

ROOT = Path(__file__).resolve().parents[2]
INSIDE = Path(__file__).parent / "inside"
CONTAINER_TIMEOUT_S = 300
VM_TIMEOUT_S = 1500  # every arm64 instruction emulated: boot, Python, a WebRTC call


@contextlib.contextmanager
def overlay(lower: Path, tmp_path: Path) -> Iterator[Path]:
    """A writable view of `lower` that leaves it as it was."""
    merged, upper, work = tmp_path / "root", tmp_path / "upper", tmp_path / "work"
    for folder in (merged, upper, work):
        folder.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def prepare(root: Path) -> None:
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
    (root / "boottest-results").mkdir(exist_ok=True)


def run_until_power_off(argv: list[str], log: Path, timeout: float) -> None:
    """Start the machine, wait until it powers itself off; kill it (by PID) if it does not."""
    with open(log, "w") as console:
        machine = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                   stderr=subprocess.STDOUT)
        try:
            machine.wait(timeout)
        except subprocess.TimeoutExpired:
            machine.send_signal(signal.SIGKILL)
            machine.wait()


def results_or_fail(text: str | None, log: Path) -> dict:
    if not text:
        pytest.fail("the boot test wrote no results; the console said:\n"
                    + log.read_text(errors="replace")[-6000:])
    return json.loads(text)


@pytest.fixture(scope="module")
def container(tmp_path_factory) -> dict:
    lower = rootfs("amd64")
    tmp_path = tmp_path_factory.mktemp("container")
    with overlay(lower, tmp_path) as root:
        prepare(root)
        log = tmp_path / "console.log"
        run_until_power_off(
            ["systemd-nspawn", "--quiet", "-D", str(root), "-b", "--private-network",
             "--register=no", "--keep-unit", "--console=pipe", "--machine=kioskd-boottest"],
            log, CONTAINER_TIMEOUT_S)
        found = root / "boottest-results/results.json"
        return results_or_fail(found.read_text() if found.exists() else None, log)


@pytest.fixture(scope="module")
def virtual_machine(tmp_path_factory) -> dict:
    lower = rootfs("arm64")
    kernels = sorted(lower.glob("boot/vmlinuz-*"))
    if not kernels:
        pytest.skip("the arm64 root file system has no kernel: build it with --kernel")
    for tool in ("qemu-system-aarch64", "mkfs.ext4", "debugfs"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing: apt-get install qemu-system-arm e2fsprogs")
    tmp_path = tmp_path_factory.mktemp("vm")
    disk = tmp_path / "root.img"
    with overlay(lower, tmp_path) as root:
        prepare(root)
        kernel = kernels[-1]
        initrd = root / "boot" / kernel.name.replace("vmlinuz", "initrd.img")
        shutil.copy(kernel, tmp_path / "vmlinuz")
        shutil.copy(initrd, tmp_path / "initrd.img")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(disk), "4G"], check=True)
    log = tmp_path / "console.log"
    run_until_power_off(
        ["qemu-system-aarch64", "-M", "virt", "-cpu", "max", "-smp", "2", "-m", "2048",
         "-nographic", "-nic", "none", "-no-reboot",
         "-kernel", str(tmp_path / "vmlinuz"), "-initrd", str(tmp_path / "initrd.img"),
         "-append", "root=/dev/vda rw console=ttyAMA0 systemd.show_status=0",
         "-drive", f"file={disk},format=raw,if=virtio"],
        log, VM_TIMEOUT_S)
    # Read from the disk image without mounting it.
    done = subprocess.run(["debugfs", "-R", "cat /boottest-results/results.json", str(disk)],
                          capture_output=True, text=True)
    disk.unlink()  # gigabytes
    return results_or_fail(done.stdout.strip(), log)


@pytest.fixture(params=["amd64 container", "arm64 virtual machine"])
def booted(request) -> dict:
    if request.param == "amd64 container":
        return request.getfixturevalue("container")
    return request.getfixturevalue("virtual_machine")


@pytest.mark.timeout(VM_TIMEOUT_S + 300)
def test_kioskd_boots_provisioned_and_answers_a_call(booted):
    found = booted
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
    assert "error" not in call, (call, found["journal"])
    assert call["answered_by"] == "kiosk"
    assert call["video_frames"] >= 10 and call["audio_frames"] >= 25
    assert call["stamps_decoded"] > 0  # the kiosk's synthetic camera, end to end
    assert call["status"]["status"]["state"] == "connected", found["journal"]
    assert found["idle_again"]
    assert found["calls"]["calls"][0]["outcome"] == "answered"
    assert found["failed_units"].strip() == "", found["failed_units"]


@pytest.mark.timeout(VM_TIMEOUT_S + 300)
def test_provisioning_took_the_files_and_the_secret_left_the_boot_partition(booted):
    found = booted
    assert "ActiveState=inactive" in found["provision_unit"]  # a oneshot that has run
    assert "Result=success" in found["provision_unit"]
    assert found["token_mode"] == "0o600"
    assert "token" not in found["boot_folder"] and "kioskd.toml" not in found["boot_folder"]
    assert "PROVISIONED.txt" in found["boot_folder"]
    assert "ERROR.txt" not in found["boot_folder"]
