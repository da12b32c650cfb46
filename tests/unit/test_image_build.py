"""The image's build files, checked without building: the pi-gen stage's shape and that it
installs what the tested root file systems install; the scripts' arguments; the units."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "image-build"
STAGE = IMAGE / "pi-gen" / "stage-kioskd"


def packages(path: Path) -> set[str]:
    return {word for line in path.read_text().splitlines() if not line.startswith("#")
            for word in line.split()}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_the_stage_has_pi_gens_shape_and_runs_the_one_install_script():
    assert os.access(STAGE / "prerun.sh", os.X_OK)
    assert "copy_previous" in (STAGE / "prerun.sh").read_text()
    assert "IMG_SUFFIX" in (STAGE / "EXPORT_IMAGE").read_text()
    scripts = sorted((STAGE / "00-kioskd").glob("*.sh"))
    assert [s.name for s in scripts] == ["01-run.sh", "02-run-chroot.sh", "03-run.sh"]
    for script in scripts:
        assert os.access(script, os.X_OK), script
        assert run("bash", "-n", str(script)).returncode == 0, script
    chroot = (STAGE / "00-kioskd" / "02-run-chroot.sh").read_text()
    assert "/tmp/kioskd-src/image-build/install.sh --appliance --no-apt" in chroot
    # build-rootfs.sh runs the same command in the tested root file systems.
    assert "image-build/install.sh --appliance --no-apt" in (IMAGE / "build-rootfs.sh").read_text()


def test_the_stage_installs_every_package_the_tests_install_and_the_camera():
    stage = packages(STAGE / "00-kioskd" / "00-packages")
    assert packages(IMAGE / "packages.txt") <= stage
    assert "python3-picamera2" in stage


def test_the_scripts_say_how_to_call_them():
    for script in ("install.sh", "build-rootfs.sh", "test.sh"):
        done = run(str(IMAGE / script), "--help")
        assert done.returncode == 0 and "--" in done.stdout, script
    assert run(str(IMAGE / "build-rootfs.sh")).returncode == 2  # no DIR
    done = run(str(IMAGE / "build-rootfs.sh"), "--arch", "riscv64", "/tmp/x")
    assert done.returncode == 2 and "arm64 or amd64" in done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_provisioning_unit_verifies(tmp_path):
    unit = (IMAGE / "files" / "kioskd-provision.service").read_text()
    copy = tmp_path / "kioskd-provision.service"
    copy.write_text(unit.replace("/opt/kioskd/.venv/bin/kioskctl", shutil.which("true")))
    done = run("systemd-analyze", "verify", "--man=no", str(copy))
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if copy.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
