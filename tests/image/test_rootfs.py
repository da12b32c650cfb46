"""What image-build/install.sh --appliance made of a Debian root file system: arm64 (the Pi's
architecture, under qemu-user) and amd64."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.image.conftest import inside, rootfs

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
VENV = "/opt/kioskd/.venv"
MACHINES = {"arm64": "aarch64", "amd64": "x86_64"}


@pytest.fixture(params=["arm64", "amd64"])
def built(request) -> tuple[str, Path]:
    return request.param, rootfs(request.param)


def test_it_is_the_architecture_it_was_built_for(built):
    arch, root = built
    done = inside(root, f"{VENV}/bin/python", "-c", "import platform; print(platform.machine())")
    assert done.stdout.strip() == MACHINES[arch], done.stderr


def test_every_installed_package_is_at_its_pin(built):
    _, root = built
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    listing = inside(root, f"{VENV}/bin/pip", "list", "--local", "--format=json",
                     "--disable-pip-version-check")
    installed = {p["name"].lower().replace("_", "-"): p["version"]
                 for p in json.loads(listing.stdout)}
    installed.pop("kioskd")
    for tool in ("pip", "setuptools"):  # the venv's own, from ensurepip
        installed.pop(tool, None)
    assert "pyalsaaudio" in installed  # built from source in the image
    assert "pywebrtc-audio" in installed  # the microphone's echo cancellation (the alsa extra)
    assert {name: version for name, version in installed.items()
            if pins.get(name) != version} == {}
    assert installed["numpy"].startswith("1.")  # picamera2's simplejpeg needs numpy 1.x
    assert inside(root, f"{VENV}/bin/pip", "check").returncode == 0


def test_the_echo_canceller_loads_and_processes(built):
    """The wheel's native library runs on the image's architecture (docs/audio.md)."""
    _, root = built
    done = inside(root, f"{VENV}/bin/python", "-c",
                  "import numpy, pywebrtc_audio\n"
                  "p = pywebrtc_audio.AudioProcessor(sample_rate=48000, echo_cancellation=True,"
                  " noise_suppression=True, auto_gain_control=True)\n"
                  "z = numpy.zeros(960, numpy.int16)\n"
                  "print(len(p.process(z, z)))")
    assert done.returncode == 0 and done.stdout.strip() == "960", done.stderr


def test_kioskd_and_kioskctl_run_and_the_appliance_config_is_good(built):
    _, root = built
    done = inside(root, f"{VENV}/bin/kioskd", "--help")
    assert done.returncode == 0 and "kiosk daemon" in done.stdout, done.stderr
    done = inside(root, f"{VENV}/bin/kioskctl", "config", "check", "/etc/kioskd/kioskd.toml")
    assert done.returncode == 0 and done.stdout.strip() == "/etc/kioskd/kioskd.toml: ok", \
        done.stdout + done.stderr
    shown = json.loads(inside(root, f"{VENV}/bin/kioskctl", "config", "show", "--json",
                              "--config", "/etc/kioskd/kioskd.toml").stdout)
    assert shown["display"]["mode"] == "fullscreen"
    assert (shown["audio"]["source"], shown["audio"]["sink"]) == ("alsa", "alsa")
    assert not (root / "etc/kioskd/token").exists()  # no secret in an image


def test_pygame_has_sdls_kms_drm_driver(built):
    _, root = built
    script = (
        "import ctypes, glob, os, pygame\n"
        "lib = glob.glob(os.path.join(os.path.dirname(pygame.__file__), '..',"
        " 'pygame_ce.libs', 'libSDL2-*'))[0]\n"
        "sdl = ctypes.CDLL(lib)\n"
        "sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p\n"
        "print(' '.join(sdl.SDL_GetVideoDriver(i).decode()"
        " for i in range(sdl.SDL_GetNumVideoDrivers())))\n")
    done = inside(root, f"{VENV}/bin/python", "-c", script)
    assert "KMSDRM" in done.stdout.split(), done.stdout + done.stderr


def test_the_units_are_enabled_and_verify(built):
    _, root = built
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "kioskd.service").is_symlink()
    assert (wants / "kioskd-provision.service").is_symlink()
    assert (root / "etc/systemd/system/getty@tty1.service").resolve() == Path("/dev/null")
    done = inside(root, "systemd-analyze", "verify", "/etc/systemd/system/kioskd.service",
                  "/etc/systemd/system/kioskd-provision.service")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kiosk_user_and_the_sd_card_settings(built):
    _, root = built
    group = (root / "etc/group").read_text()
    for name in ("video", "audio", "render", "input", "gpio"):
        line = next(g for g in group.splitlines() if g.startswith(f"{name}:"))
        assert "kioskd" in line.split(":")[3].split(","), line
    journald = (root / "etc/systemd/journald.conf.d/50-kioskd.conf").read_text()
    assert "SystemMaxUse=64M" in journald
    assert (root / "boot/firmware/kioskd/README.txt").exists()
    # The service cannot write bytecode (ProtectSystem=strict): it was compiled at install.
    assert list((root / "opt/kioskd/.venv").rglob("kioskd/__pycache__/app.*.pyc"))
