"""`kioskctl selftest` opens the camera, microphone and speaker the way the daemon does."""

from __future__ import annotations

from pathlib import Path

import pytest

from kioskd.config import load_config
from kioskd.media.processing import library_version
from kioskd.selftest import run_selftest, summary

from tests.unit.test_v4l2_file_sources import make_video


def checks_of(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


async def test_a_file_camera_passes_the_camera_check(tmp_path: Path):
    video = make_video(tmp_path / "demo.mp4", size=(320, 240))
    config = load_config(None, ["video.source=file", f"video.file={video}",
                                "video.width=320", "video.height=240"], env={})
    camera = checks_of(await run_selftest(config))["camera"]
    assert camera["ok"], camera
    assert camera["detail"] == "file: first frame 320x240"


async def test_a_missing_v4l2_camera_fails_naming_its_device():
    config = load_config(None, ["video.source=v4l2", "video.device=/dev/nonexistent-cam"],
                         env={})
    report = await run_selftest(config)
    camera = checks_of(report)["camera"]
    assert not camera["ok"] and not report["ok"]
    assert camera["detail"].startswith("/dev/nonexistent-cam does not exist")
    assert "FAIL camera      /dev/nonexistent-cam does not exist" in summary(report)


async def test_alsa_microphone_and_speaker_are_opened_at_their_devices(tmp_path: Path,
                                                                       monkeypatch):
    pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")
    from tests.support import alsa_file_plugin as plugin

    tone, out = tmp_path / "tone.raw", tmp_path / "out.raw"
    plugin.write_tone(tone, 1000.0, seconds=10)  # longer than the check: see the plugin's notes
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(plugin.write_asoundrc(tmp_path, infile=tone,
                                                                      outfile=out)))
    config = load_config(None, ["audio.source=alsa", "audio.sink=alsa",
                                f"audio.capture_device={plugin.CAPTURE_PCM}",
                                f"audio.playback_device={plugin.PLAYBACK_PCM}"], env={})
    checks = checks_of(await run_selftest(config))
    assert checks["microphone"]["ok"], checks["microphone"]
    assert checks["microphone"]["detail"].startswith("alsa: 25 frames, level -")
    # The tone's own level: the processing is off for the check, and said to be ready.
    assert "level -9." in checks["microphone"]["detail"]
    if library_version() is not None:
        assert checks["microphone"]["detail"].endswith(
            "; in calls: echo cancellation, noise suppression, high-pass filter, auto gain "
            f"({library_version()})")
    assert checks["speaker"]["ok"], checks["speaker"]
    assert checks["speaker"]["detail"] == (
        f"alsa: played half a second of 440 Hz on {plugin.PLAYBACK_PCM}")
    assert plugin.analyse(plugin.read_raw(out), 440.0)["frequency_error_pct"] < 1
