"""One call's aiortc peer connection: answer or place a call, trickle in candidates, close.

The session carries out the call machine's rtc effects. It never decides anything about the
call: results go back through `on_state` (connection states) and the return values.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
    sdp,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from ..media.h264 import attach_sender, h264_preferences, is_pre_encoded
from ..protocol import IceCandidate, SessionDescription
from . import encoding
from .codecs import codec_preferences, common_video_codecs, reject_video, rejected_video_answer
from .jitter import conceal_lost_audio, release_frames_on_marker
from .remb import limit_remb
from .reoffer import ReofferError, media_kinds, shape_like
from .watchdog import MediaWatchdog

log = logging.getLogger(__name__)

_M_LINE = re.compile(r"^m=([a-z]+) ", re.MULTILINE)


class RtcError(Exception):
    """An offer or answer that aiortc cannot use. The message is one readable sentence."""


# Opens a call's local source; None when the device can't be had (the call goes on without).
SourceOpener = Callable[[], Awaitable[MediaStreamTrack | None]]
# The camera's opener is told the video codecs the peer can take (None: not known yet, our own
# offer), so that a camera with its own H.264 encoder can give frames to encode instead.
VideoOpener = Callable[[Sequence[str] | None], Awaitable[MediaStreamTrack | None]]


@dataclass
class MediaPlan:
    """What a call sends and where what it receives goes. Built per call by the app."""

    audio_source: SourceOpener | None
    video_source: VideoOpener | None
    on_remote_track: Callable[[MediaStreamTrack], None]
    # The offer's video has no codec in common with the kiosk: the call is audio only (why).
    on_audio_only: Callable[[str], None] | None = None
    video_codecs: Sequence[str] = ("VP8", "H264")
    encoder_speed: str = encoding.DEFAULT_SPEED  # video.encoder_speed (rtc/encoding.py)
    ice_servers: Sequence[RTCIceServer] = field(default_factory=list)
    media_timeout_s: float = 2.0  # nothing from the peer this long: the path is lost
    relay_only: bool = False  # gather only TURN relay candidates (see RtcSession.relayed)
    # The most video bitrate to ask the caller for, now (rtc/remb.py); None: no limit.
    receive_video_bps: Callable[[], int | None] | None = None


def offered_kinds(sdp: str) -> list[str]:
    """The media kinds of an offer, in m-line order; raises RtcError if it has none.

    A scan of the m-lines, not a parse: setRemoteDescription parses the offer anyway (and
    refuses a broken one), and a second full parse costs the answer a third of a millisecond.
    """
    kinds = [kind for kind in _M_LINE.findall(sdp) if kind in ("audio", "video")]
    if not kinds:
        raise RtcError("the SDP has no audio or video section")
    return kinds


def offered_video_names(sdp: str) -> list[str]:
    """The codec names of an SDP's video rtpmaps (for the log), without RTX."""
    video = sdp[sdp.find("m=video"):] if "m=video" in sdp else ""
    names = re.findall(r"^a=rtpmap:\d+ ([^/\r\n]+)/", video, re.MULTILINE)
    return [name for name in dict.fromkeys(names) if name.lower() not in ("rtx", "red",
                                                                           "ulpfec")]


def parse_candidate(candidate: IceCandidate) -> Any:
    """A browser's candidate line (with 'candidate:' and extra attributes) as aiortc wants it."""
    line = candidate.candidate
    if line.startswith("candidate:"):
        line = line[len("candidate:"):]
    parsed = candidate_from_sdp(line)
    parsed.sdpMid = candidate.sdp_mid
    parsed.sdpMLineIndex = candidate.sdp_mline_index
    return parsed


class RtcSession:
    def __init__(self, call_id: str, plan: MediaPlan,
                 on_state: Callable[[str], None]) -> None:
        self.call_id = call_id
        self._plan = plan
        self._on_state = on_state
        # This call's encoders are made with the config's speed (they are made lazily, on the
        # first frame to send, so a reload applies from the next call).
        encoding.install()
        encoding.configure(plan.encoder_speed)
        self._pc = RTCPeerConnection(RTCConfiguration(
            iceServers=list(plan.ice_servers),
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if plan.relay_only
            else RTCIceTransportPolicy.ALL))
        self._local_tracks: list[MediaStreamTrack] = []
        self._queued: list[IceCandidate] = []
        self._remote_set = False
        self._closed = False
        self._peer_video_codecs: list[str] | None = None  # from the offer we answer
        self.watchdog = MediaWatchdog(plan.media_timeout_s)
        self._pc.on("connectionstatechange", self._state_changed)
        self._pc.on("track", plan.on_remote_track)

    @property
    def pc(self) -> RTCPeerConnection:
        return self._pc

    def _state_changed(self) -> None:
        state = self._pc.connectionState
        log.info("call %s: connection %s", self.call_id, state)
        if not self._closed:
            self._on_state(state)

    async def _open_sources(self, kinds: Sequence[str]) -> dict[str, MediaStreamTrack | None]:
        """One track per kind, opened concurrently (the openers wait for devices off the loop)."""
        wanted = list(dict.fromkeys(kinds))
        results = await asyncio.gather(*(self._open(kind) for kind in wanted),
                                       return_exceptions=True)
        tracks: dict[str, MediaStreamTrack | None] = {}
        for kind, result in zip(wanted, results, strict=True):
            if isinstance(result, BaseException):
                log.error("call %s: opening the %s source failed: %r; the call goes on "
                          "without it", self.call_id, kind, result)
                result = None
            tracks[kind] = result
        if self._closed:  # hung up while the devices were opening: let go of them
            for track in tracks.values():
                if track is not None:
                    track.stop()
            raise RtcError("the call ended while its camera and microphone were opening")
        return tracks

    def _open(self, kind: str) -> Awaitable[MediaStreamTrack | None]:
        if kind == "audio":
            return self._plan.audio_source() if self._plan.audio_source else _none()
        video = self._plan.video_source
        return video(self._peer_video_codecs) if video else _none()

    async def _add_local_media(self, kinds: Sequence[str]) -> None:
        # Transceivers are added before setRemoteDescription so that aiortc uses them (and the
        # video codec preferences) for the offer's m-lines instead of making recvonly ones.
        # They follow the offer's m-line order; a second m-line of a kind only receives.
        sources = await self._open_sources(kinds)
        for kind in kinds:
            track = sources.pop(kind, None)
            if track is not None:
                self._local_tracks.append(track)
                transceiver = self._pc.addTransceiver(track, direction="sendrecv")
                # Pre-encoded H.264: keyframe requests and REMB must reach the camera's encoder.
                attach_sender(transceiver.sender, track)
            else:
                transceiver = self._pc.addTransceiver(kind, direction="recvonly")
            self.watchdog.listen(transceiver)
            if kind == "video":
                release_frames_on_marker(transceiver.receiver)  # one frame interval sooner
                if self._plan.receive_video_bps is not None:
                    limit_remb(transceiver.receiver, self._plan.receive_video_bps)
                transceiver.setCodecPreferences(self._video_preferences(track))
            else:
                conceal_lost_audio(transceiver.receiver)  # a lost packet: 20 ms concealed

    def _video_preferences(self, track: MediaStreamTrack | None) -> list[Any]:
        """Every video codec, the configured ones first: a preference orders, it never
        refuses. A pre-encoded stream answers only as what it is (it was opened because the
        offer has H.264); our own offer puts H.264 first for it, and should the far end choose
        another codec the camera gives frames to encode instead (LocalMedia)."""
        if track is None or not is_pre_encoded(track):
            return codec_preferences("video", self._plan.video_codecs)
        if self._peer_video_codecs is not None:
            return h264_preferences()
        return codec_preferences("video", ["H264", *self._plan.video_codecs])

    async def _flush_candidates(self) -> None:
        queued, self._queued = self._queued, []
        for candidate in queued:
            await self.add_candidate(candidate)

    async def accept(self, offer: SessionDescription,
                     candidates: Sequence[IceCandidate] = ()) -> SessionDescription:
        """Answer an offer; returns our answer with all our candidates inside."""
        self._queued.extend(candidates)
        remote = offer.sdp
        rejected: dict[int, str] = {}  # video sections taken out, by m-line index
        if "video" in offered_kinds(remote):
            self._peer_video_codecs = common_video_codecs(remote)
            if not self._peer_video_codecs:
                remote, rejected = reject_video(remote)
                why = "the caller's browser has no video codec in common with the kiosk"
                log.warning("call %s: %s (it offered %s): an audio call", self.call_id, why,
                            ", ".join(offered_video_names(offer.sdp)) or "none")
                if self._plan.on_audio_only is not None:
                    self._plan.on_audio_only(why)
        await self._add_local_media(offered_kinds(remote))
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(remote, "offer"))
        except Exception as exc:
            raise RtcError(f"the offer was refused: {exc}") from None
        self._remote_set = True
        await self._flush_candidates()
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        # localDescription, not createAnswer()'s result: aiortc adds its candidates only here.
        answer = self._pc.localDescription.sdp
        return SessionDescription("answer", rejected_video_answer(answer, rejected)
                                  if rejected else answer)

    async def offer(self, call_type: str) -> SessionDescription:
        """Start an outgoing call; returns our offer with all our candidates inside."""
        await self._add_local_media(["audio", "video"] if call_type == "video" else ["audio"])
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return SessionDescription("offer", self._pc.localDescription.sdp)

    async def reoffer(self, negotiated: str) -> SessionDescription:
        """Recover a call on this new connection: our offer, shaped like the call's last
        negotiated session so that the peer can apply it to the connection it has
        (rtc/reoffer.py); returns it with all our candidates inside."""
        try:
            await self._add_local_media(media_kinds(negotiated))
            offer = shape_like((await self._pc.createOffer()).sdp, negotiated)
        except ReofferError as exc:
            raise RtcError(f"the call cannot be re-offered: {exc}") from None
        await self._pc.setLocalDescription(RTCSessionDescription(offer, "offer"))
        return SessionDescription("offer", self._pc.localDescription.sdp)

    def negotiated(self) -> str | None:
        """The answer of this connection's offer/answer exchange (ours or the peer's): what
        both sides agreed on. None before the exchange is complete."""
        local, remote = self._pc.localDescription, self._pc.remoteDescription
        if local is None or remote is None:
            return None
        return local.sdp if local.type == "answer" else remote.sdp

    @property
    def relay_only(self) -> bool:
        return self._plan.relay_only

    def relayed(self) -> bool:
        """Whether this connection's media went through our TURN relay (the local candidate
        of its nominated pair). A re-offer after such a connection offers only relay
        candidates: a browser applying it in place while its old path still counts as working
        checks the new pairs slowly (one at a time, the highest priority first) and relay
        pairs come last, so host candidates that cannot be reached cost it seconds."""
        for transceiver in self._pc.getTransceivers():
            dtls = transceiver.receiver.transport
            if dtls is None:
                continue
            connection = dtls.transport.iceGatherer._connection  # aioice's, for its pair
            if any(pair.local_candidate.type == "relay"
                   for pair in connection._nominated.values()):
                return True
        return False

    def host_addresses(self) -> set[str]:
        """The machine's own addresses this connection's candidates were gathered on."""
        description = self._pc.localDescription
        if description is None:
            return set()
        return {candidate.ip for media in sdp.SessionDescription.parse(description.sdp).media
                for candidate in media.ice_candidates if candidate.type == "host"}

    async def apply_answer(self, answer: SessionDescription) -> None:
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        except Exception as exc:
            raise RtcError(f"the answer was refused: {exc}") from None
        self._remote_set = True
        await self._flush_candidates()

    async def add_candidate(self, candidate: IceCandidate) -> None:
        """Queue until the remote description is set; a bad candidate is logged, not fatal."""
        if candidate.is_end_of_candidates or self._closed:
            return
        if not self._remote_set:
            self._queued.append(candidate)
            return
        try:
            await self._pc.addIceCandidate(parse_candidate(candidate))
        except Exception as exc:
            log.info("call %s: ignored candidate %r: %s", self.call_id,
                     candidate.candidate[:80], exc)

    async def close(self) -> None:
        self._closed = True
        self._queued = []
        for track in self._local_tracks:
            track.stop()
        try:
            await asyncio.wait_for(self._pc.close(), timeout=5)
        except Exception as exc:  # closing must never keep the kiosk from its next call
            log.warning("call %s: closing the connection: %r", self.call_id, exc)


async def _none() -> None:
    return None
