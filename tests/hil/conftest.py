"""The hardware-in-the-loop rig: a Raspberry Pi with its camera module, a sound card whose
speaker the microphone can hear, and a screen (docs/hil.md). `pytest -m hil` there; anywhere
else each test skips and says which part is missing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# The browser call reuses the caller page's fixtures: a relay and headless Chromium.
from tests.e2e.conftest import browser, open_caller, relay  # noqa: F401

MODEL = Path("/proc/device-tree/model")
# The rig's ALSA devices (docs/hil.md); "default" suits a Pi with one USB sound card.
CAPTURE = os.environ.get("KIOSKD_HIL_CAPTURE", "default")
PLAYBACK = os.environ.get("KIOSKD_HIL_PLAYBACK", "default")


def board() -> str:
    """The Pi's model, or skip: not a Raspberry Pi."""
    model = MODEL.read_text(errors="replace").strip("\x00 \n") if MODEL.exists() else ""
    if "Raspberry Pi" not in model:
        pytest.skip(f"not a Raspberry Pi ({model or 'no /proc/device-tree/model'}): "
                    "the HIL suite runs on the rig (docs/hil.md)")
    return model


@pytest.fixture
def pi() -> str:
    return board()


@pytest.fixture
def camera(pi) -> None:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        pytest.skip(f"picamera2 cannot be imported ({exc}): apt install python3-picamera2, "
                    "and a venv with --system-site-packages")
    if not Picamera2.global_camera_info():
        pytest.skip("no camera: libcamera finds none (the ribbon cable, camera_auto_detect=1)")


@pytest.fixture
def sound_card(pi) -> None:
    cards = Path("/proc/asound/cards")
    if not cards.exists() or "no soundcards" in cards.read_text():
        pytest.skip("no sound card (/proc/asound/cards)")
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: pip install '.[alsa]'")


@pytest.fixture
def screen(pi) -> None:
    connected = [path for path in glob.glob("/sys/class/drm/card*-*/status")
                 if Path(path).read_text().strip() == "connected"]
    if not connected:
        pytest.skip("no screen connected (/sys/class/drm/card*-*/status)")
    if shutil.which("systemctl") and subprocess.run(
            ["systemctl", "is-active", "--quiet", "kioskd"]).returncode == 0:
        pytest.skip("kioskd.service holds the screen: systemctl stop kioskd first")
