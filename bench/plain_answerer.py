"""A plain aiortc answerer: the baseline the kiosk is compared with in the benchmarks.

Written the way aiortc's own examples (examples/server/server.py) answer an offer, with the
signaling swapped for PROTOCOL.md's Socket.IO events: on `webrtc:offer` it makes an
`RTCPeerConnection` (with `iceServers=[]`, as the kiosk has by default, so neither side waits
for a STUN server on loopback), adds a local track for each remote one from the "track" event,
drains the remote tracks into a `MediaBlackhole`, then setRemoteDescription, createAnswer,
setLocalDescription, and emits `pc.localDescription` (which carries all its candidates).

Beyond the example, only the minimum a browser caller needs:
- trickled candidates (`webrtc:ice-candidate`) are applied with `candidate_from_sdp`; those that
  arrive before the offer has been applied are kept in a list and applied right after it
  (python-socketio runs each event handler as its own task, so they do overtake it);
- `webrtc:call-end` closes the connection, so one process can take call after call.

It renders nothing. Its only additions are two measuring probes, so benchmarks can compare it
with the kiosk: the time the connection reached "connected" and the time the first remote video
frame was decoded (a pass-through track in front of the MediaBlackhole).

What it sends (`--send`):
- `pattern` (default): the kiosk's own synthetic camera (the stamped test pattern, 640x480@24
  unless told otherwise) and tone, so both answerers encode the same pictures;
- `green`: aiortc's `VideoStreamTrack` (640x480 green at 30 fps) and `AudioStreamTrack`
  (silence), exactly the example's dummy tracks.

Run as its own process (benchmarks do). It prints JSON lines on stdout: `{"event": "ready"}`
once signed in, `{"event": "stats", ...}` on SIGUSR1 and when stopped (SIGTERM, SIGINT), and
with `--events` a `{"event": ..., "time": time.time()}` line when a call connects, when its
first video frame is decoded and when it is closed:

    .venv/bin/python -m bench.plain_answerer --url http://127.0.0.1:8080 --token SECRET
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any, Callable

import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from aiortc.sdp import candidate_from_sdp

log = logging.getLogger("plain-answerer")


class _FirstFrameProbe(MediaStreamTrack):
    """Passes a remote track through, noting when its first frame came out of the decoder."""

    def __init__(self, track: MediaStreamTrack, answerer: "PlainAnswerer") -> None:
        super().__init__()
        self.kind = track.kind
        self._track = track
        self._answerer = answerer

    async def recv(self):
        frame = await self._track.recv()
        if self.kind == "video":
            self._answerer.video_frames += 1
            if self._answerer.first_video_at is None:
                self._answerer.first_video_at = time.monotonic()
                self._answerer.on_event("first_video")
        return frame


class PlainAnswerer:
    def __init__(self, url: str, token: str, *, send: str = "pattern",
                 video: tuple[int, int, int] = (640, 480, 24),
                 on_event: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.token = token
        self.send = send
        self.video = video
        self.sio = socketio.AsyncClient(reconnection=False)
        self.pc: RTCPeerConnection | None = None
        self.recorder: MediaBlackhole | None = None
        self.peer: Any = None
        self.remote_set = False
        self.pending: list[dict[str, Any]] = []  # candidates that overtook their offer
        self.idle = asyncio.Event()
        self.idle.set()
        # Probes, read by benchmarks (time.monotonic()).
        self.calls = 0
        self.offer_received_at: float | None = None
        self.connected_at: float | None = None
        self.first_video_at: float | None = None
        self.video_frames = 0
        self.on_event = on_event or (lambda name: None)
        self.sio.on("webrtc:offer", self.on_offer)
        self.sio.on("webrtc:ice-candidate", self.on_candidate)
        self.sio.on("webrtc:call-end", self.on_call_end)

    def _local_track(self, kind: str) -> MediaStreamTrack:
        if self.send == "green":
            return AudioStreamTrack() if kind == "audio" else VideoStreamTrack()
        from kioskd.media.synthetic import SyntheticCamera, SyntheticTone

        return SyntheticTone() if kind == "audio" else SyntheticCamera(*self.video)

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, wait_timeout=5)

    async def on_offer(self, data: dict[str, Any]) -> None:
        if self.pc is not None:  # one call at a time; the example has no notion of "busy"
            await self.close_pc()
        self.offer_received_at = time.monotonic()
        self.connected_at = self.first_video_at = None
        self.idle.clear()
        self.calls += 1
        self.peer = data["from"]
        offer = RTCSessionDescription(sdp=data["offer"]["sdp"], type=data["offer"]["type"])

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        recorder = self.recorder = MediaBlackhole()

        @pc.on("connectionstatechange")
        async def on_connectionstatechange() -> None:
            log.info("connection state is %s", pc.connectionState)
            if pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
                self.on_event("connected")
            if pc.connectionState == "failed" and pc is self.pc:
                await self.close_pc()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            log.info("track %s received", track.kind)
            pc.addTrack(self._local_track(track.kind))
            recorder.addTrack(_FirstFrameProbe(track, self))

        # handle offer
        await pc.setRemoteDescription(offer)
        await recorder.start()
        # the minimum for trickled candidates: those that came ahead of the offer
        self.remote_set = True
        pending, self.pending = self.pending, []
        for init in pending:
            await self._add_candidate(pc, init)

        # send answer
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        await self.sio.emit("webrtc:answer", {
            "to": self.peer,
            "answer": {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type},
        })

    async def on_candidate(self, data: dict[str, Any]) -> None:
        init = data.get("candidate") or {}
        if not init.get("candidate"):
            return  # end of candidates
        if self.pc is None or not self.remote_set:
            self.pending.append(init)
            return
        await self._add_candidate(self.pc, init)

    @staticmethod
    async def _add_candidate(pc: RTCPeerConnection, init: dict[str, Any]) -> None:
        candidate = candidate_from_sdp(init["candidate"].split(":", 1)[1])
        candidate.sdpMid = init.get("sdpMid")
        candidate.sdpMLineIndex = init.get("sdpMLineIndex")
        await pc.addIceCandidate(candidate)

    async def on_call_end(self, data: dict[str, Any]) -> None:
        await self.close_pc()

    async def close_pc(self) -> None:
        pc, self.pc = self.pc, None
        recorder, self.recorder = self.recorder, None
        self.remote_set = False
        self.pending = []
        if recorder is not None:
            await recorder.stop()
        if pc is not None:
            for sender in pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
            await pc.close()
        self.idle.set()
        if pc is not None:
            self.on_event("idle")

    async def close(self) -> None:
        await self.close_pc()
        await self.sio.disconnect()

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls, "video_frames_received": self.video_frames}


async def serve(args: argparse.Namespace) -> None:
    def report(name: str) -> None:
        print(json.dumps({"event": name, "time": time.time()}), flush=True)

    answerer = PlainAnswerer(args.url, args.token, send=args.send,
                             video=(args.width, args.height, args.fps),
                             on_event=report if args.events else None)
    await answerer.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(
        json.dumps({"event": "stats", **answerer.stats()}), flush=True))
    print(json.dumps({"event": "ready"}), flush=True)
    await stop.wait()
    stats = answerer.stats()
    await answerer.close()
    print(json.dumps({"event": "stats", **stats}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the relay, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", required=True, help="this answerer's token on the relay")
    parser.add_argument("--send", choices=("pattern", "green"), default="pattern")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--events", action="store_true",
                        help='also print {"event": "connected"|"first_video"|"idle", "time": '
                             'time.time()} lines')
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
