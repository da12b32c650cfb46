"""On the rig: the camera delivers frames the way the board encodes them, the microphone hears
the speaker and the echo canceller takes it out again, the screen opens through KMS/DRM, and a
browser's call works end to end."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from kioskd.config import load_config
from kioskd.media import opening, registry
from kioskd.media.echo_reference import EchoReference
from kioskd.media.processing import library_version
from kioskd.media.synthetic import SyntheticTone, _StreamClock
from tests.hil.conftest import CAPTURE, PLAYBACK
from tests.support.echo_signals import speech_like

pytestmark = [pytest.mark.hil, pytest.mark.timeout(120)]

TONE_HZ = 1000.0


async def test_camera_frames_arrive_encoded_as_the_board_does(camera, pi):
    import av

    config = load_config(None, ["video.source=picamera2", "media.profile=auto"])
    opened = await asyncio.to_thread(opening.open_configured, registry.VIDEO_SOURCES, config)
    try:
        frames = [await asyncio.wait_for(opened.track.recv(), 5) for _ in range(30)]
    finally:
        opened.track.stop()
    if config.video.encoder == "hardware":  # Pi 4, Zero 2 W: the VideoCore's H.264
        assert all(isinstance(f, av.Packet) for f in frames)
        assert any(f.is_keyframe for f in frames)
    else:  # Pi 5: YUV frames for aiortc to encode
        assert all(isinstance(f, av.VideoFrame) for f in frames)
        assert (frames[-1].width, frames[-1].height) == (config.video.width, config.video.height)


async def test_the_microphone_hears_a_tone_played_on_the_speaker(sound_card):
    # The raw microphone: noise suppression would take the steady tone for noise.
    config = load_config(None, ["audio.source=alsa", "audio.sink=alsa",
                                f"audio.capture_device={CAPTURE}",
                                f"audio.playback_device={PLAYBACK}",
                                "audio.noise_suppression=false", "audio.auto_gain=false"])
    speaker = opening.configured_speaker(config)
    speaker.add_track(SyntheticTone(frequency=TONE_HZ, amplitude=0.5))
    await speaker.start()
    microphone = (await asyncio.to_thread(
        opening.open_configured, registry.AUDIO_SOURCES, config)).track
    try:
        for _ in range(25):  # let the room and the card settle for half a second
            await microphone.recv()
        heard = np.concatenate([(await microphone.recv()).to_ndarray().ravel()
                                for _ in range(100)]).astype(np.float64)
    finally:
        microphone.stop()
        await speaker.stop()
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
    frequencies = np.fft.rfftfreq(len(heard), 1 / 48000)
    audible = frequencies > 100  # above mains hum and the card's DC offset
    peak = frequencies[audible][np.argmax(spectrum[audible])]
    band = (frequencies > TONE_HZ - 20) & (frequencies < TONE_HZ + 20)
    floor = np.median(spectrum[audible])
    assert abs(peak - TONE_HZ) < 20, f"loudest at {peak:.0f} Hz"
    assert 20 * np.log10(spectrum[band].max() / floor) > 20  # dB above the noise floor


class _Talk(MediaStreamTrack):
    """Speech-like talk as a remote audio track would bring it: 20 ms frames in real time."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self._samples, self._at = samples, 0
        self._clock = _StreamClock(50)

    async def recv(self) -> av.AudioFrame:
        if self._at + 960 > len(self._samples):
            raise MediaStreamError
        slot = await self._clock.next_slot()
        chunk = self._samples[self._at:self._at + 960].reshape(1, -1)
        self._at += 960
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, slot * 960
        return frame


async def test_the_echo_canceller_takes_the_speaker_out_of_the_microphone(sound_card):
    """What the daemon does in a call: the speaker hands what it plays to the kiosk's echo
    reference, the microphone's stage cancels it. Judged by the stage's own ERLE estimate
    (docs/audio.md) after 6 s of far-end talk, in a quiet room."""
    if library_version() is None:
        pytest.skip("pywebrtc-audio missing: pip install '.[alsa]'")
    config = load_config(None, ["audio.source=alsa", "audio.sink=alsa",
                                f"audio.capture_device={CAPTURE}",
                                f"audio.playback_device={PLAYBACK}",
                                "audio.noise_suppression=false", "audio.auto_gain=false"])
    reference = EchoReference()
    speaker = opening.configured_speaker(config, reference)
    talk = _Talk(np.round(speech_like(12, seed=1, level_dbfs=-12)).astype(np.int16))
    speaker.add_track(talk)
    await speaker.start()
    microphone = (await asyncio.to_thread(opening.open_configured, registry.AUDIO_SOURCES,
                                          config, echo_reference=reference)).track
    try:
        for _ in range(400):  # 8 s: 2 s to converge, then the 2 s the estimate covers, twice
            await microphone.recv()
        stats = microphone.stats()["processing"]
    finally:
        microphone.stop()
        await speaker.stop()
        talk.stop()
    assert stats["echo_cancellation_active"], stats
    # A real speaker distorts a little, unlike the made-up room of the unit test (25 dB).
    assert stats["erle_db"] is not None and stats["erle_db"] >= 20, stats


def test_the_screen_opens_with_kms_drm(screen):
    # In its own process, as kioskd.service would: SDL picks its driver once per process.
    script = (
        "import os; os.environ['SDL_VIDEODRIVER'] = 'kmsdrm'\n"
        "import pygame; pygame.display.init()\n"
        "surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)\n"
        "print(pygame.display.get_driver(), *surface.get_size())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    driver, width, height = done.stdout.split()
    assert driver == "KMSDRM" and int(width) > 0 and int(height) > 0


@pytest.mark.netns
async def test_a_browser_calls_the_kiosk_on_its_real_camera_and_microphone(
        camera, sound_card, relay, open_caller):
    from kioskd.call.states import State
    from tests.e2e.test_browser import ALICE, connected, page_stats
    from tests.integration.conftest import running_kiosk

    async with running_kiosk(relay.url, "video.source=picamera2", "media.profile=auto",
                             "video.width=640", "video.height=480", "video.fps=24",
                             "audio.source=alsa", "audio.sink=alsa",
                             f"audio.capture_device={CAPTURE}",
                             f"audio.playback_device={PLAYBACK}") as kiosk:
        page = await open_caller(token=ALICE, call="kiosk")
        await page.click("#video-call")
        await connected(page, kiosk)
        stats = await page_stats(page, "s.framesDecoded > 30 && s.audioBytesReceived > 0")
        assert stats["framesDecoded"] > 30
        await kiosk.runner.media.speaker.wait_for_frames(audio=100, timeout=15)
        assert kiosk.status()["media_errors"] is None
        assert kiosk.runner.machine.state is State.CONNECTED
