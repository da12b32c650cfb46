"""`kioskctl selftest`: open every device the config names and reach the signaling server.

For test rigs and installers: each check runs with a timeout and reports ok or what is wrong;
the exit code is 0 only if all pass. Run it while kioskd is stopped: a running daemon may hold
the camera during a call.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable

import av
import numpy as np

from .config import Config, ConfigError, read_token
from .media import registry

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
    except asyncio.TimeoutError:
        ok, detail = False, f"no answer within {CHECK_TIMEOUT_S:.0f} s"
    except Exception as exc:  # every failure is a finding, never a crash of the self-test
        ok, detail = False, str(exc) or type(exc).__name__
    return Check(name, ok, detail, round((time.monotonic() - started) * 1000, 1))


async def _camera(config: Config) -> str:
    video = config.video
    track = registry.resolve(registry.VIDEO_SOURCES, video.source)(
        width=video.width, height=video.height, fps=video.fps)
    try:
        frame = await track.recv()
    finally:
        track.stop()
    size = f"{frame.width}x{frame.height}" if hasattr(frame, "width") else "pre-encoded"
    return f"{video.source}: first frame {size}"


async def _microphone(config: Config) -> str:
    audio = config.audio
    options = {"frequency": audio.tone_hz} if audio.source == "synthetic" \
        else {"device": audio.capture_device}
    track = registry.resolve(registry.AUDIO_SOURCES, audio.source)(**options)
    try:
        frames = [await track.recv() for _ in range(25)]  # half a second
    finally:
        track.stop()
    samples = np.concatenate([f.to_ndarray().ravel() for f in frames]).astype(np.float64)
    rms = np.sqrt(np.mean(samples ** 2)) / 32768 if samples.size else 0.0
    level = 20 * np.log10(rms) if rms > 0 else -120.0
    return f"{audio.source}: {len(frames)} frames, level {level:.1f} dBFS"


class _Tone:
    """A few frames of 440 Hz for the speaker check, shaped like a remote audio track."""

    kind = "audio"

    def __init__(self, frames: int = 25) -> None:
        self._left = frames
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        from aiortc.mediastreams import MediaStreamError

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
    sink = registry.resolve(registry.AUDIO_SINKS, audio.sink)(
        device=audio.playback_device, buffer_ms=audio.playout_buffer_ms,
        max_buffer_ms=audio.max_playout_ms)
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
    checks = [await _timed(name, lambda probe=probe: probe(config))
              for name, probe in CHECKS.items()]
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def summary(report: dict[str, Any]) -> str:
    lines = [f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']:<11} {c['detail']}"
             for c in report["checks"]]
    failed = sum(not c["ok"] for c in report["checks"])
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)
