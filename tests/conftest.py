"""Suite-wide set-up: the whole session runs in a private loopback-only network namespace.

Tests that move WebRTC media are marked `netns`; they are skipped (never run on the machine's
real network) when the namespace cannot be made, e.g. without root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support import netns


@pytest.fixture(autouse=True)
def private_state_directory(tmp_path_factory, monkeypatch):
    """A kiosk started by a test keeps its call log in a temporary folder, never in the
    machine's /var/lib/kioskd (daemons started as subprocesses inherit this too)."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))


FAKE_PICAMERA2 = Path(__file__).resolve().parent / "support" / "fake_picamera2"


def _forget_picamera2() -> None:
    for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
        del sys.modules[name]


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch):
    """The fake picamera2 (it follows the real API) on sys.path; yields its knobs module."""
    _forget_picamera2()
    monkeypatch.syspath_prepend(str(FAKE_PICAMERA2))
    import picamera2.fake

    yield picamera2.fake
    picamera2.fake.reset()
    _forget_picamera2()


@pytest.fixture
def mock_pins():
    """gpiozero's own mock pin factory, for the GPIO buttons."""
    gpiozero = pytest.importorskip("gpiozero", reason="gpiozero missing: scripts/setup.sh --test")
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    previous = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = factory
    yield factory
    factory.reset()
    gpiozero.Device.pin_factory = previous


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(netns.MARKER) != "1" and not netns.in_private_netns() and netns.can_create():
        # Re-run this very pytest command inside the namespace.
        netns.reexec_inside([sys.executable, "-m", "pytest", *config.invocation_params.args])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if netns.in_private_netns():
        return
    skip = pytest.mark.skip(reason="needs a private network namespace (run the suite as root)")
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(skip)
