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

With --settings it measures the encoders themselves instead, offline (no network, no
namespace): the kiosk's synthetic pattern, 640x480@24 unless --size (with --noise 0: exactly as
the kiosk sends it), is encoded by aiortc's own VP8 and H.264 encoders and by the kiosk's tuned
ones at each `video.encoder_speed` (rtc/encoding.py), at aiortc's starting and highest
bitrates. For each:
CPU ms per frame (`time.process_time()`, all threads), the bitrate it made, the frames it
dropped, and the picture's quality: the stream decoded again and compared with the source,
PSNR of the luma over the whole run and of the worst frame. Then decoder CPU per frame by
decoder and thread count. --explore adds VP8 variants that were tried and not taken.

    .venv/bin/python -m bench.encode_cpu --settings [--frames 240] [--noise 2] [--size 640x480]
                                         [--repeat 3] [--explore] [--codec VP8]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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


# -- --settings: the encoders themselves, offline ----------------------------------------------

SETTINGS_FPS = 24  # the kiosk's synthetic camera (and constrained table)
BITRATES = {"VP8": (500_000, 1_500_000), "H264": (1_000_000, 3_000_000)}  # aiortc's start, max
EXPLORE_VP8 = {  # libvpx options changed from the fast level's, tried with --explore
    "fast, cpu-used -4": {"cpu-used": "-4"},
    "fast, denoiser 4": {"noise-sensitivity": "4"},
    "fast, static-thresh 100": {"static-thresh": "100"},
    "fast, max-intra-rate 300": {"max-intra-rate": "300"},
    "fast, drop-threshold 30": {"drop-threshold": "30"},
}


def pattern_frames(size: tuple[int, int], count: int, noise: float) -> list[av.VideoFrame]:
    """The kiosk's synthetic pattern, as its camera sends it, with optional sensor noise."""
    from kioskd.media.synthetic import TestPattern

    pattern = TestPattern(*size)
    rng = np.random.default_rng(1)
    frames = []
    for n in range(count):
        frame = pattern.render(n, n, 0)
        if noise > 0:
            planes = frame.to_ndarray()
            planes = np.clip(planes + rng.normal(0, noise, planes.shape), 16, 235)
            frame = av.VideoFrame.from_ndarray(planes.astype(np.uint8), format="yuv420p")
        frames.append(frame)
    return frames


def encode_all(encoder: Any, codec: str, frames: list[av.VideoFrame], bitrate: int
               ) -> tuple[float, list[bytes]]:
    """CPU ms per frame, and each frame's encoded bytes (b"" for a dropped frame)."""
    from aiortc.codecs import depayload, get_capabilities

    params = next(c for c in get_capabilities("video").codecs if c.name == codec)
    encoder.target_bitrate = bitrate
    encoded, cpu = [], 0.0
    for n, frame in enumerate(frames):
        frame.pts = round(n * 90000 / SETTINGS_FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        start = time.process_time()
        payloads, _ = encoder.encode(frame, force_keyframe=n == 0)
        cpu += time.process_time() - start
        encoded.append(b"".join(depayload(params, p) for p in payloads))
    return cpu * 1000 / len(frames), encoded


def decode_all(decoder: Any, encoded: list[bytes]) -> tuple[float, dict[int, np.ndarray]]:
    """CPU ms per decoded frame, and the luma of each decoded frame by its frame number."""
    from aiortc.jitterbuffer import JitterFrame

    lumas: dict[int, np.ndarray] = {}
    cpu = 0.0
    for n, data in enumerate(encoded):
        if not data:
            continue
        start = time.process_time()
        frames = decoder.decode(JitterFrame(data, n))
        cpu += time.process_time() - start
        for frame in frames:
            lumas[n] = frame.to_ndarray(format="gray")
    return cpu * 1000 / max(1, len(lumas)), lumas


def psnr(sources: list[np.ndarray], lumas: dict[int, np.ndarray]) -> tuple[float, float]:
    """PSNR (dB) of the luma over the whole run, and of the worst frame. A dropped frame is
    shown as the last one decoded, as a receiver would."""
    errors, last = [], None
    for n, luma in enumerate(sources):
        last = lumas.get(n, last)
        source = luma.astype(np.float64)
        shown = np.zeros_like(source) if last is None else last.astype(np.float64)
        errors.append(max(float(np.mean((source - shown) ** 2)), 1e-10))

    def db(mse: float) -> float:
        return round(10 * np.log10(255 ** 2 / mse), 2)

    return db(float(np.mean(errors))), db(max(errors))


def settings_row(codec: str, name: str, bitrate: int, runs: list[tuple[float, list[bytes]]],
                 sources: list[np.ndarray]) -> dict[str, Any]:
    """One encoder setting at one bitrate: the least CPU of its runs (the one least disturbed
    by the rest of the machine), the quality of the last run's stream."""
    from aiortc.codecs.h264 import H264Decoder
    from aiortc.codecs.vpx import Vp8Decoder

    cpu_ms, encoded = min(run[0] for run in runs), runs[-1][1]
    _, lumas = decode_all(Vp8Decoder() if codec == "VP8" else H264Decoder(), encoded)
    whole, worst = psnr(sources, lumas)
    return {"codec": codec, "encoder": name, "target_kbps": bitrate // 1000,
            "cpu_ms_per_frame": round(cpu_ms, 2),
            "kbps": round(sum(map(len, encoded)) * 8 * SETTINGS_FPS / len(sources) / 1000),
            "dropped": sum(1 for data in encoded if not data),
            "psnr_y_db": whole, "worst_frame_psnr_y_db": worst}


def run_settings(size: tuple[int, int], count: int, noise: float, explore: bool, repeat: int,
                 codecs: list[str]) -> dict[str, Any]:
    from aiortc.codecs.h264 import H264Decoder, H264Encoder
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder

    from kioskd.rtc import encoding

    frames = pattern_frames(size, count, noise)
    sources = [frame.to_ndarray(format="gray") for frame in frames]
    encoders: list[tuple[str, str, Any]] = [("VP8", "aiortc", Vp8Encoder),
                                            ("H264", "aiortc", H264Encoder)]
    for speed, settings in encoding.SPEEDS.items():
        encoders += [("VP8", speed, lambda s=settings: encoding.TunedVp8Encoder(s)),
                     ("H264", speed, lambda s=settings: encoding.TunedH264Encoder(s))]
    if explore:
        fast = encoding.SPEEDS["fast"]
        encoders += [("VP8", name, lambda o=options: encoding.TunedVp8Encoder(
            dataclasses.replace(fast, vp8={**fast.vp8, **o})))
            for name, options in EXPLORE_VP8.items()]
    cases = [(codec, name, make, bitrate)
             for codec, name, make in sorted(encoders, key=lambda e: e[0] != "VP8")
             if codec in codecs for bitrate in BITRATES[codec]]
    # Round robin, so that a busy moment of the machine spreads over all the cases.
    runs: list[list[tuple[float, list[bytes]]]] = [[] for _ in cases]
    for _ in range(repeat):
        for case, (codec, _name, make, bitrate) in zip(runs, cases, strict=True):
            case.append(encode_all(make(), codec, frames, bitrate))
    rows = [settings_row(codec, name, bitrate, case_runs, sources)
            for case_runs, (codec, name, _make, bitrate) in zip(runs, cases, strict=True)]

    # Decoders: aiortc's (FFmpeg's default threads) against the kiosk's, on the stream aiortc's
    # encoder makes at its highest bitrate.
    decoders: list[tuple[str, str, Any]] = [
        ("VP8", "aiortc (libvpx, default threads)", Vp8Decoder),
        ("VP8", "kiosk (FFmpeg's vp8, 1 thread)", encoding.TunedVp8Decoder),
        ("H264", "aiortc (h264, default threads)", H264Decoder),
        ("H264", "kiosk (h264, 1 thread)", encoding.TunedH264Decoder)]
    decoders = [decoder for decoder in decoders if decoder[0] in codecs]
    streams = {codec: encode_all(encoder, codec, frames, BITRATES[codec][1])[1]
               for codec, encoder in (("VP8", Vp8Encoder()), ("H264", H264Encoder()))
               if codec in codecs}
    decode_runs: list[list[float]] = [[] for _ in decoders]
    for _ in range(repeat):
        for times, (codec, _name, make) in zip(decode_runs, decoders, strict=True):
            times.append(decode_all(make(), streams[codec])[0])
    decoding = [{"codec": codec, "decoder": name, "threads": make().codec.thread_count,
                 "cpu_ms_per_frame": round(min(times), 3)}
                for times, (codec, name, make) in zip(decode_runs, decoders, strict=True)]
    return {
        "bench": "encode_cpu --settings",
        "stream": f"{size[0]}x{size[1]}@{SETTINGS_FPS}, {count} frames",
        "content": f"the kiosk's synthetic pattern, luma/chroma noise sigma {noise}; "
                   f"least CPU of {repeat} runs, round robin",
        "encoders": rows,
        "decoders": decoding,
        "note": "cpu_ms_per_frame: process CPU (all threads) per frame; psnr_y_db: luma PSNR "
                "of the decoded stream against the encoded frames over the run, worst_frame: the "
                "worst single frame (a dropped frame counts as the previous one shown again)",
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
    parser.add_argument("--settings", action="store_true",
                        help="measure the encoders' settings offline (CPU per frame, PSNR)")
    parser.add_argument("--frames", type=int, default=240, help="frames per --settings run")
    parser.add_argument("--size", default="640x480", help="with --settings: the picture size")
    parser.add_argument("--repeat", type=int, default=3,
                        help="with --settings: runs per setting (the least CPU counts)")
    parser.add_argument("--explore", action="store_true",
                        help="with --settings: also the VP8 variants that were not taken")
    parser.add_argument("--codec", choices=("VP8", "H264"), action="append",
                        help="with --settings: only this codec (repeatable; default both)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.settings:
        width, height = map(int, args.size.split("x"))
        print(json.dumps(run_settings((width, height), args.frames, args.noise, args.explore,
                                      args.repeat, args.codec or ["VP8", "H264"])))
        return
    if args.receiver:
        asyncio.run(receiver_main())
        return
    netns.run_module_inside("bench.encode_cpu")
    print(json.dumps(asyncio.run(run(args.seconds, args.warmup, args.noise))))


if __name__ == "__main__":
    main()
