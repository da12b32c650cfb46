"""Which video codecs a call can use: a preference orders them, it never refuses one.

`rtc.video_codecs` says what the kiosk prefers, most preferred first. An offer is answered with
the first codec in that order that both sides have; an offer without any of them is answered
with the best codec both sides have (a Firefox without OpenH264 calling a kiosk that prefers
H.264 gets VP8). Only an offer with no video codec in common at all becomes an audio call:
`reject_video` takes the video out of the offer before aiortc sees it (aiortc refuses an offer
with an unusable m-line, and cannot answer one as rejected), and `rejected_video_answer` puts
it back into the answer as rejected (port 0), as RFC 8829 (JSEP) answers such a line.

aiortc's H.264 is packetization-mode 1 only, in two profiles: Constrained Baseline (42e01f) and
Baseline (42001f), any level (it answers level 3.1 with level-asymmetry-allowed). An offered
profile is matched as such and the answer carries it back: 42e01f is answered 42e01f, 42001f is
answered 42001f. High profiles and packetization-mode 0 have nothing in common with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aiortc import RTCRtpSender
from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import SessionDescription as ParsedSdp

from ..media.h264 import PROFILE_LEVEL_ID

_SECTION = re.compile(r"(?=^m=)", re.MULTILINE)
_BUNDLE = re.compile(r"^a=group:BUNDLE([^\r\n]*)", re.MULTILINE)
_MID = re.compile(r"^a=mid:([^\r\n]+)", re.MULTILINE)


def codec_preferences(kind: str, names: Sequence[str]) -> list[RTCRtpCodecCapability]:
    """All of aiortc's `kind` codecs: the configured names first, in their order, then the
    others as aiortc orders them, RTX last. Never fewer codecs than aiortc has."""
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    rank = {name.lower(): index for index, name in enumerate(names)}
    codecs = [c for c in capabilities if not is_rtx(c)]
    # Stable: aiortc's order otherwise, but H.264's Constrained Baseline ahead of Baseline
    # (what every browser decodes, and what an offer with both should get).
    codecs.sort(key=lambda c: (rank.get(c.name.lower(), len(rank)),
                               c.parameters.get("profile-level-id", PROFILE_LEVEL_ID)
                               != PROFILE_LEVEL_ID))
    return codecs + [c for c in capabilities if is_rtx(c)]


def common_video_codecs(offer: str) -> list[str]:
    """The names of the video codecs of the offer's first video m-line that aiortc can
    negotiate (as aiortc matches them: H.264 by profile and packetization mode), in the
    offer's order; [] when it has none or no video."""
    for media in ParsedSdp.parse(offer).media:
        if media.kind != "video":
            continue
        names = []
        for offered in media.rtp.codecs:
            if is_rtx(offered):
                continue
            if any(is_codec_compatible(local, offered) for local in CODECS["video"]):
                names.append(offered.name)
        return list(dict.fromkeys(names))
    return []


def _sections(sdp: str) -> tuple[str, list[str]]:
    """The session part and the media sections of an SDP."""
    session, *sections = _SECTION.split(sdp)
    return session, sections


def reject_video(offer: str) -> tuple[str, dict[int, str]]:
    """The offer without its video sections (nor their mids in the BUNDLE group), and the
    removed sections by m-line index, for `rejected_video_answer`."""
    session, sections = _sections(offer)
    removed = {index: section for index, section in enumerate(sections)
               if section.startswith("m=video")}
    mids = {match.group(1).strip() for section in removed.values()
            for match in [_MID.search(section)] if match}

    def without_mids(match: re.Match[str]) -> str:
        kept = [mid for mid in match.group(1).split() if mid not in mids]
        return "a=group:BUNDLE " + " ".join(kept)

    session = _BUNDLE.sub(without_mids, session)
    kept = [section for index, section in enumerate(sections) if index not in removed]
    return session + "".join(kept), removed


def rejected_video_answer(answer: str, removed: dict[int, str]) -> str:
    """`answer` with each removed offer section put back at its index as rejected: port 0,
    its first payload type, its mid, inactive."""
    session, sections = _sections(answer)
    for index in sorted(removed):
        offered = removed[index]
        m_line = offered.split("\r\n", 1)[0].split()
        rejected = f"m=video 0 {m_line[2]} {m_line[3]}\r\nc=IN IP4 0.0.0.0\r\n"
        mid = _MID.search(offered)
        if mid:
            rejected += f"a=mid:{mid.group(1).strip()}\r\n"
        sections.insert(index, rejected + "a=inactive\r\n")
    return session + "".join(sections)
