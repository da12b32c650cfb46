"""`kioskctl selftest`: open every device the config names and reach the signaling server.

For test rigs and installers: each check runs with a timeout and reports ok or what is wrong;
the exit code is 0 only if all pass. Run it while kioskd is stopped: a running daemon may hold
the camera during a call. The camera, microphone and speaker are opened as the daemon opens
them (`media.opening`: each back end's own settings, the busy retries, the basic settings).
The microphone's level is its raw level (its processing, which would suppress a quiet room's
noise and move the gain, is off for the check); the check also says whether the processing
can run (docs/audio.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fractions
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .config import Config, ConfigError, read_token
from .media import opening, registry
from .media.processing import ProcessingOptions, library_version

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 10.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    ms: float


async def _timed(name: str, probe: Callable[[], Awaitable[str]]) -> Check:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {CHECK_TIMEOUT_S:.0f} s"
    except Exception as exc:  # every failure is a finding, never a crash of the self-test
        ok, detail = False, str(exc) or type(exc).__name__
    return Check(name, ok, detail, round((time.monotonic() - started) * 1000, 1))


async def _camera(config: Config) -> str:
    # Opening blocks (and retries a busy camera): on a worker thread, as in a call.
    opened = await asyncio.to_thread(opening.open_configured, registry.VIDEO_SOURCES, config)
    try:
        frame = await opened.track.recv()
    finally:
        opened.track.stop()
    size = f"{frame.width}x{frame.height}" if hasattr(frame, "width") else "pre-encoded"
    fallback = f" ({opened.fallback})" if opened.fallback else ""
    return f"{config.video.source}: first frame {size}{fallback}"


def _processing(config: Config) -> str:
    """What the microphone's processing stage would do in a call, and whether it can."""
    options = ProcessingOptions.from_config(config)
    if config.audio.source != "alsa" or not options.any:
        return ""
    library = library_version()
    if library is None:
        return "; unprocessed in calls: pywebrtc-audio is not installed (the alsa extra)"
    return f"; in calls: {', '.join(options.names())} ({library})"


async def _microphone(config: Config) -> str:
    audio = config.audio
    raw = dataclasses.replace(config, audio=dataclasses.replace(
        audio, echo_cancellation=False, noise_suppression=False, high_pass_filter=False,
        auto_gain=False))
    opened = await asyncio.to_thread(opening.open_configured, registry.AUDIO_SOURCES, raw)
    try:
        frames = [await opened.track.recv() for _ in range(25)]  # half a second
    finally:
        opened.track.stop()
    samples = np.concatenate([f.to_ndarray().ravel() for f in frames]).astype(np.float64)
    rms = np.sqrt(np.mean(samples ** 2)) / 32768 if samples.size else 0.0
    level = 20 * np.log10(rms) if rms > 0 else -120.0
    return f"{audio.source}: {len(frames)} frames, level {level:.1f} dBFS{_processing(config)}"


class _Tone(MediaStreamTrack):
    """A few frames of 440 Hz for the speaker check, shaped like a remote audio track (a
    track: the sink names its drain after the track's id)."""

    kind = "audio"

    def __init__(self, frames: int = 25) -> None:
        super().__init__()
        self._left = frames
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self._left == 0:
            raise MediaStreamError
        self._left -= 1
        t = (np.arange(960) + self._pts) / 48000
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        await asyncio.sleep(0.02)  # real-time pacing, like a remote track
        return frame


async def _speaker(config: Config) -> str:
    audio = config.audio
    if audio.sink == "null":
        return "null sink: nothing to open"
    sink = opening.configured_speaker(config)
    sink.add_track(_Tone())
    await sink.start()
    try:
        await sink.wait_for_frames(audio=25, timeout=5)
    finally:
        await sink.stop()
    return f"{audio.sink}: played half a second of 440 Hz on {audio.playback_device}"


async def _display(config: Config) -> str:
    mode = config.display.mode
    if mode == "none":
        return "display.mode none: nothing to open"
    from .ui import KioskScreen

    screen = KioskScreen.from_config(config)
    await screen.start()
    try:
        shown = await screen.wait_shown()  # the idle screen: nothing has happened yet
        size = screen.stats().get("screen_size")
    finally:
        await screen.stop()
    return f"{mode}: {shown} screen shown" + (f" at {size[0]}x{size[1]}" if size else "")


async def _signaling(config: Config) -> str:
    import socketio

    try:
        token = read_token(config)
    except ConfigError as exc:
        raise RuntimeError(str(exc)) from None
    refused: list[str] = []
    client = socketio.AsyncClient(reconnection=False, ssl_verify=config.signaling.verify_tls,
                                  handle_sigint=False)
    client.on("connect_error", lambda data=None: refused.append(
        str(data.get("message") if isinstance(data, dict) else data)))
    try:
        await client.connect(config.signaling.url, auth={"token": token},
                             wait_timeout=config.signaling.connect_timeout_s)
    except Exception as exc:
        if "unauthorized" in refused:
            raise RuntimeError(f"{config.signaling.url} refused the token (unauthorized): "
                               "check signaling.token_file") from None
        raise RuntimeError(f"cannot reach {config.signaling.url}: {refused[0] if refused else exc}"
                           ) from None
    await client.disconnect()
    return f"{config.signaling.url}: connected, token accepted"


CHECKS: dict[str, Callable[[Config], Awaitable[str]]] = {
    "camera": _camera,
    "microphone": _microphone,
    "speaker": _speaker,
    "display": _display,
    "signaling": _signaling,
}


async def run_selftest(config: Config) -> dict[str, Any]:
    checks = [await _timed(name, functools.partial(probe, config))
              for name, probe in CHECKS.items()]
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def summary(report: dict[str, Any]) -> str:
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']:<11} {c['detail']}"
             for c in report["checks"]]
    failed = sum(not c["ok"] for c in report["checks"])
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)
