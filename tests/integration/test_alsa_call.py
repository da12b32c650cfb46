"""A whole call on ALSA: the kiosk's microphone and speaker are ALSA's file plugin (no sound
card needed). The caller hears the kiosk's captured tone; the kiosk plays the caller's tone."""

from __future__ import annotations

import pytest

from tests.integration.conftest import connected_call, running_kiosk
from tests.support import alsa_file_plugin as plugin

alsaaudio = pytest.importorskip("alsaaudio", reason="pyalsaaudio missing: scripts/setup.sh --test")

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


async def test_kiosk_on_alsa_microphone_and_speaker(relay, alice, tmp_path, monkeypatch):
    tone = tmp_path / "mic.raw"
    plugin.write_tone(tone, 1000.0, seconds=30)  # longer than the call: see the plugin's notes
    out = tmp_path / "speaker.raw"
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(plugin.write_asoundrc(tmp_path, infile=tone,
                                                                      outfile=out)))
    async with running_kiosk(relay.url, "audio.source=alsa", "audio.sink=alsa",
                             f"audio.capture_device={plugin.CAPTURE_PCM}",
                             f"audio.playback_device={plugin.PLAYBACK_PCM}") as kiosk:
        await connected_call(kiosk, alice, "audio")
        # 150 frames of 20 ms: three seconds of audio each way.
        await alice.sink.wait_for_frames(audio=150, timeout=20)
        await kiosk.runner.media.speaker.wait_for_frames(audio=150, timeout=20)
        assert kiosk.status()["call"]["media"]["speaker"]["device_error"] is None
        received = plugin.dominant_frequency(alice.sink.recorded())
    heard = plugin.analyse(plugin.read_raw(out), expected_hz=660.0)  # the caller's tone
    assert heard["frequency_error_pct"] < 1 and heard["level_dbfs"] > -30
    assert abs(received - 1000.0) / 1000.0 < 0.01
