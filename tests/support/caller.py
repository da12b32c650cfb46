"""A scripted caller that follows PROTOCOL.md the way a browser does.

It is written from the protocol, not from the kiosk's code: its own Socket.IO client and aiortc
peer connection, synthetic media (or given audio samples), and a measuring sink that keeps
the last seconds of the audio it received. Like a browser, it sends its offer (or
answer) without candidates and trickles them right behind it, then an end-of-candidates.
"""

from __future__ import annotations

import asyncio
import fractions
import re
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription as ParsedSdp
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from kioskd.media.measure import MeasuringSink
from kioskd.media.synthetic import SyntheticCamera, SyntheticTone, _StreamClock

AUDIO_RATE = 48000
FRAME_SAMPLES = AUDIO_RATE // 50  # 20 ms


class LoopedSamples(MediaStreamTrack):
    """An audio track that says the given mono s16 48 kHz samples over and over, 20 ms a frame,
    paced by the stream clock like the synthetic tone."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        if samples.dtype != np.int16 or samples.ndim != 1 or not samples.size:
            raise ValueError("LoopedSamples takes a non-empty 1-D int16 array")
        self.samples = samples
        self._clock = _StreamClock(AUDIO_RATE / FRAME_SAMPLES)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        slot = await self._clock.next_slot()
        first = slot * FRAME_SAMPLES  # a skipped slot skips its samples: the speech keeps time
        chunk = np.take(self.samples, np.arange(first, first + FRAME_SAMPLES), mode="wrap")
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = first
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class RecordingSink(MeasuringSink):
    """Also keeps the last few seconds of received audio (mono s16), to check what was heard."""

    def __init__(self, keep_frames: int = 250) -> None:
        super().__init__()
        self.audio: deque[np.ndarray] = deque(maxlen=keep_frames)

    def _on_audio(self, frame) -> None:
        super()._on_audio(frame)
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
        self.audio.append(samples.mean(axis=1))

    def recorded(self) -> np.ndarray:
        return np.concatenate(list(self.audio)) if self.audio else np.zeros(0)


EVENTS = ("webrtc:offer", "webrtc:answer", "webrtc:ice-candidate", "webrtc:call-end",
          "webrtc:call-reject", "webrtc:call-timeout", "webrtc:error")


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """Strip a=candidate lines from an SDP and return them as RTCIceCandidateInit dicts."""
    parsed = ParsedSdp.parse(sdp)
    candidates = []
    for index, media in enumerate(parsed.media):
        for candidate in media.ice_candidates:
            candidates.append({"candidate": "candidate:" + candidate_to_sdp(candidate),
                               "sdpMid": media.rtp.muxId, "sdpMLineIndex": index,
                               "usernameFragment": media.ice.usernameFragment})
    stripped = re.sub(r"a=(candidate:[^\r\n]*|end-of-candidates)\r\n", "", sdp)
    return stripped, candidates


def only_codecs(names: Sequence[str]) -> list[Any]:
    """aiortc's video capabilities restricted to `names` ("VP8", "H264", "H264/42e01f"), with
    RTX."""
    chosen = []
    for codec in RTCRtpSender.getCapabilities("video").codecs:
        profile = codec.parameters.get("profile-level-id")
        if codec.name.lower() == "rtx" or codec.name in names or f"{codec.name}/{profile}" in names:
            chosen.append(codec)
    return chosen


class ScriptedCaller:
    def __init__(self, url: str, token: str, *, send_video: bool = True,
                 video: tuple[int, int, int] = (320, 240, 15),
                 answer_reoffers: bool = False, send_audio: np.ndarray | None = None,
                 record_seconds: float = 5.0, video_codecs: Sequence[str] | None = None,
                 edit_offer: Callable[[str], str] | None = None,
                 edit_answer: Callable[[str], str] | None = None) -> None:
        self.url = url
        self.token = token
        self.send_video = send_video
        self.video = video  # width, height, fps of the synthetic camera
        # What the caller says (mono s16 at 48 kHz, looped); None: a 660 Hz tone.
        self.send_audio = send_audio
        self.record_frames = round(record_seconds * 50)  # received audio kept, 20 ms frames
        # The only video codecs the caller has, like a browser without some: "VP8", "H264",
        # or one H.264 profile, "H264/42001f". None: all of aiortc's.
        self.video_codecs = video_codecs
        # Changes to the offer it sends and the answer it receives (SDP text), to act as a
        # browser with codecs aiortc has not.
        self.edit_offer = edit_offer
        self.edit_answer = edit_answer
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.pc: RTCPeerConnection | None = None
        self.sink = RecordingSink(self.record_frames)
        self.call_id: str | None = None
        self.peer: Any = None
        self.connected = asyncio.Event()
        # Answer the peer's re-offers in the current call by ourselves, as a browser does
        # (else a test takes them with answer_reoffer()).
        self.answer_reoffers = answer_reoffers
        self.reoffers_answered = 0
        for event in EVENTS:
            self.sio.on(event, self._receiver(event))

    def _receiver(self, event: str):
        def receive(data: Any = None) -> None:
            if (event == "webrtc:offer" and self.answer_reoffers and self.pc is not None
                    and isinstance(data, dict) and data.get("callId") == self.call_id):
                asyncio.ensure_future(self._answer_reoffer(data))
                return
            self.inbox.put_nowait((event, data))
            if event == "webrtc:ice-candidate" and self.pc is not None:
                asyncio.ensure_future(self._add_candidate(data))
        return receive

    async def _add_candidate(self, data: dict[str, Any]) -> None:
        init = data.get("candidate") or {}
        line = init.get("candidate") or ""
        if not line or self.pc is None:
            return
        candidate = candidate_from_sdp(line.split(":", 1)[1])
        candidate.sdpMid, candidate.sdpMLineIndex = init.get("sdpMid"), init.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, wait_timeout=5)

    async def emit(self, event: str, payload: Any) -> None:
        await self.sio.emit(event, payload)

    async def expect(self, event: str, timeout: float = 10.0) -> Any:
        """Wait for `event`, skipping candidates and anything else in between."""
        async def next_match() -> Any:
            while True:
                name, data = await self.inbox.get()
                if name == event:
                    return data
        return await asyncio.wait_for(next_match(), timeout)

    def _new_pc(self, call_type: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(SyntheticTone(frequency=660.0) if self.send_audio is None
                    else LoopedSamples(self.send_audio))
        if call_type == "video":
            if self.send_video:
                transceiver = pc.addTransceiver(SyntheticCamera(*self.video))
            else:
                transceiver = pc.addTransceiver("video", direction="recvonly")
            if self.video_codecs is not None:
                transceiver.setCodecPreferences(only_codecs(self.video_codecs))

        @pc.on("track")
        def on_track(track) -> None:
            self.sink.add_track(track)
            asyncio.ensure_future(self.sink.start())

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.connected.set()

        return pc

    async def _trickle(self, candidates: list[dict[str, Any]]) -> None:
        for candidate in candidates:
            await self.emit("webrtc:ice-candidate", {"to": self.peer, "candidate": candidate,
                                                     "callId": self.call_id})
        await self.emit("webrtc:ice-candidate", {"to": self.peer, "candidate": None,
                                                 "callId": self.call_id})

    async def call(self, peer: Any, call_type: str = "video", *, candidates_first: bool = False,
                   call_id: str | None = None, trickle: bool = True,
                   announce: str | None = None) -> None:
        """Send an offer like a browser: candidates trickled behind it (or ahead of it; or,
        with trickle=False, never: then the connection cannot complete). `announce`: the call
        type the offer says, when not the connection's own (an edited offer)."""
        self.peer = peer
        self.call_id = call_id or uuid.uuid4().hex[:8]
        self.connected.clear()
        self.pc = self._new_pc(call_type)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp, candidates = split_candidates(self.pc.localDescription.sdp)
        if self.edit_offer is not None:
            sdp = self.edit_offer(sdp)
        offer = {"to": peer, "offer": {"type": "offer", "sdp": sdp},
                 "type": announce or call_type,
                 "callId": self.call_id}
        if not trickle:
            await self.emit("webrtc:offer", offer)
        elif candidates_first:
            await self._trickle(candidates)
            await self.emit("webrtc:offer", offer)
        else:
            await self.emit("webrtc:offer", offer)
            await self._trickle(candidates)

    async def receive_answer(self, timeout: float = 10.0) -> dict[str, Any]:
        data = await self.expect("webrtc:answer", timeout)
        sdp = data["answer"]["sdp"]
        if self.edit_answer is not None:
            sdp = self.edit_answer(sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        return data

    async def answer_incoming(self, timeout: float = 10.0) -> dict[str, Any]:
        """Take the next offer, answer it with candidates trickled behind the answer."""
        data = await self.expect("webrtc:offer", timeout)
        await self._answer(data)
        return data

    async def _answer(self, data: dict[str, Any]) -> None:
        self.peer, self.call_id = data["from"], data.get("callId")
        self.connected.clear()
        self.pc = self._new_pc(data.get("type", "video"))
        await self.pc.setRemoteDescription(RTCSessionDescription(**data["offer"]))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp, candidates = split_candidates(self.pc.localDescription.sdp)
        await self.emit("webrtc:answer", {"to": self.peer, "answer": {"type": "answer", "sdp": sdp},
                                          "callId": self.call_id})
        await self._trickle(candidates)

    async def _answer_reoffer(self, data: dict[str, Any]) -> None:
        old = self.pc
        await self._answer(data)
        if old is not None:
            await old.close()
        self.reoffers_answered += 1

    async def answer_reoffer(self, timeout: float = 10.0) -> dict[str, Any]:
        """The peer re-offers in the call (PROTOCOL.md): answer it on a new connection, as a
        page that cannot apply it in place does, and close the old one."""
        data = await self.expect("webrtc:offer", timeout)
        await self._answer_reoffer(data)
        return data

    async def hangup(self) -> None:
        await self.emit("webrtc:call-end", {"to": self.peer, "callId": self.call_id})
        await self.close_pc()

    async def close_pc(self) -> None:
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        await self.sink.stop()
        self.sink = RecordingSink(self.record_frames)

    async def close(self) -> None:
        await self.close_pc()
        await self.sio.disconnect()


class Silenced:
    """While in effect, the caller's peer connection sends nothing at all (no RTP, RTCP or
    STUN): its path to the far end looks dead from there, as when a link goes down. Its
    sockets stay open and it keeps receiving, so the call can carry on afterwards."""

    def __init__(self, caller: ScriptedCaller) -> None:
        assert caller.pc is not None
        self._transports = [protocol.transport
                            for ice in caller.pc._RTCPeerConnection__iceTransports
                            for protocol in ice._connection._protocols]
        self._saved: list[Any] = []

    def __enter__(self) -> Silenced:
        for transport in self._transports:
            self._saved.append(transport.sendto)
            transport.sendto = lambda *args, **kwargs: None
        return self

    def __exit__(self, *exc: object) -> None:
        for transport, sendto in zip(self._transports, self._saved, strict=True):
            transport.sendto = sendto
