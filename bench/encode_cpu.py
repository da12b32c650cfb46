"""Sender CPU for one 1280x720@30 outbound video stream, three ways, side by side:

- pre_encoded_h264: H.264 access units made beforehand (libx264, as the Pi's encoder would make
  them, not timed) pushed into kioskd's PreEncodedH264Track at 30 fps: the sender only
  parses, packetizes, encrypts and sends. This is the Pi 4's hardware-encoder path, minus the
  camera and the encoder, which run outside the CPU there.
- aiortc_h264: the same pictures as raw frames, encoded by aiortc's own libx264 encoder.
- aiortc_vp8: the same, encoded by aiortc's libvpx VP8 encoder.

Frames are the stamped test pattern with sensor-like noise (--noise), rendered before timing
(60 frames, cycled), so the source costs nothing in any mode. The receiving peer runs in a
child process, so its decoding is not counted: the number is `time.process_time()` of the
sending process over a window of wall time after a warm-up. Prints one JSON line. Runs inside
a private loopback-only network namespace (re-executes itself there).

    .venv/bin/python -m bench.encode_cpu [--seconds 10] [--noise 2]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import logging
import os
import platform
import subprocess
import sys
import time
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from tests.support import netns

WIDTH, HEIGHT, FPS = 1280, 720, 30
CYCLE = 60  # frames rendered (and access units encoded) once, then repeated
PRE_ENCODED_BITRATE = 2_500_000  # what kioskd sets the Pi's encoder to at 720p30


def render_frames(noise: float) -> list[av.VideoFrame]:
    """The stamped test pattern, plus Gaussian noise of `noise` levels (a camera sensor's
    grain, which an encoder can't predict; without it the pattern is unrealistically cheap)."""
    from kioskd.media.synthetic import TestPattern

    pattern = TestPattern(WIDTH, HEIGHT)
    rng = np.random.default_rng(1)
    frames = []
    for n in range(CYCLE):
        frame = pattern.render(n, n, 0)
        if noise > 0:
            planes = frame.to_ndarray()  # yuv420p: Y rows, then U and V
            grain = rng.normal(0, noise, planes.shape)
            planes = np.clip(planes + grain, 16, 235).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frames.append(frame)
    return frames


def encode_access_units(frames: list[av.VideoFrame]) -> list[bytes]:
    """One GOP of Annex-B access units, as the Pi's encoder sends them (SPS/PPS on the IDR)."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS)
    codec.bit_rate, codec.gop_size, codec.profile = PRE_ENCODED_BITRATE, CYCLE, "Baseline"
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "level": "31",
                     "x264-params": "scenecut=0"}
    units = []
    for n, frame in enumerate(frames):
        frame.pts = n
        units += [bytes(p) for p in codec.encode(frame)]
    units += [bytes(p) for p in codec.encode(None)]
    return units


class CycledFrames(MediaStreamTrack):
    """A video track returning pre-rendered frames at FPS, paced like the synthetic camera."""

    kind = "video"

    def __init__(self, frames: list[av.VideoFrame]) -> None:
        super().__init__()
        self.frames, self.index = frames, 0
        self.start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.start is None:
            self.start = time.monotonic()
        delay = self.start + self.index / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = self.frames[self.index % len(self.frames)]
        frame.pts = self.index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.index += 1
        return frame


async def feed(track: Any, units: list[bytes]) -> None:
    """Push the access units at FPS, as the encoder's thread would."""
    start = time.monotonic()
    n = 0
    while track.readyState == "live":
        delay = start + n / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        track.push(units[n % len(units)], round(n * 1_000_000 / FPS))
        n += 1


class Receiver:
    """The far end: `python -m bench.encode_cpu --receiver` in a child process."""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.encode_cpu", "--receiver",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()
        return json.loads(await self.process.stdout.readline())

    async def close(self) -> None:
        await self.ask({"quit": True})
        await self.process.wait()


async def receiver_main() -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from kioskd.media.measure import MeasuringSink

    loop = asyncio.get_running_loop()
    pc: RTCPeerConnection | None = None
    sink: MeasuringSink | None = None
    while True:
        message = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
        if "offer" in message:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            sink = MeasuringSink()
            pc.on("track", sink.add_track)
            await sink.start()
            await pc.setRemoteDescription(RTCSessionDescription(message["offer"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            reply: dict[str, Any] = {"answer": pc.localDescription.sdp}
        elif "count" in message:
            reply = {"frames": sink.video_frames if sink else 0}
        else:
            if sink is not None:
                await sink.stop()
            if pc is not None:
                await pc.close()
            pc = sink = None
            reply = {"closed": True}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if message.get("quit"):
            return


async def measure(mode: str, frames: list[av.VideoFrame], units: list[bytes],
                  receiver: Receiver, seconds: float, warmup: float) -> dict[str, Any]:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from kioskd.media.h264 import PreEncodedH264Track, attach_sender, h264_preferences

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    feeder = None
    if mode == "pre_encoded_h264":
        track: Any = PreEncodedH264Track()
        feeder = asyncio.ensure_future(feed(track, units))
        preferences = h264_preferences()
    else:
        track = CycledFrames(frames)
        name = "video/H264" if mode == "aiortc_h264" else "video/VP8"
        codecs = RTCRtpSender.getCapabilities("video").codecs
        preferences = [c for c in codecs if c.mimeType == name] + [
            c for c in codecs if c.mimeType == "video/rtx"]
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(preferences)
    attach_sender(transceiver.sender, track)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await receiver.ask({"offer": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(answer["answer"], "answer"))

    async def sent_bytes() -> int:
        # getStats() returns the same report object each time, updated: read it at once.
        report = await transceiver.sender.getStats()
        return sum(s.bytesSent for s in report.values() if s.type == "outbound-rtp")

    await asyncio.sleep(warmup)  # connect, first keyframe, bitrate ramp
    before = await receiver.ask({"count": True})
    bytes_before = await sent_bytes()
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    after = await receiver.ask({"count": True})
    bytes_after = await sent_bytes()

    codec = "H264" if mode != "aiortc_vp8" else "VP8"
    assert codec in pc.remoteDescription.sdp
    if feeder is not None:
        feeder.cancel()
    track.stop()
    await pc.close()
    await receiver.ask({"close": True})
    return {
        "mode": mode,
        "cpu_s_per_s": round(cpu / wall, 3),
        "received_fps": round((after["frames"] - before["frames"]) / wall, 1),
        "sent_kbps": round((bytes_after - bytes_before) * 8 / wall / 1000),
    }


async def run(seconds: float, warmup: float, noise: float) -> dict[str, Any]:
    frames = render_frames(noise)
    units = encode_access_units(frames)
    receiver = Receiver()
    await receiver.start()
    try:
        results = [await measure(mode, frames, units, receiver, seconds, warmup)
                   for mode in ("pre_encoded_h264", "aiortc_h264", "aiortc_vp8")]
    finally:
        await receiver.close()
    return {
        "bench": "encode_cpu",
        "stream": f"{WIDTH}x{HEIGHT}@{FPS}",
        "seconds": seconds,
        "content": f"stamped test pattern, {CYCLE} frames cycled, luma/chroma noise sigma {noise}",
        "results": {r.pop("mode"): r for r in results},
        "note": "cpu_s_per_s: CPU seconds the sending process used per second of stream "
                "(1.0 = one core); the pre-encoded path excludes the encoder (off the CPU on "
                "a Pi 4)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}, PyAV {av.__version__}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--noise", type=float, default=2.0,
                        help="sensor-like noise added to the pictures (levels, sigma)")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.receiver:
        asyncio.run(receiver_main())
        return
    netns.run_module_inside("bench.encode_cpu")
    print(json.dumps(asyncio.run(run(args.seconds, args.warmup, args.noise))))


if __name__ == "__main__":
    main()
