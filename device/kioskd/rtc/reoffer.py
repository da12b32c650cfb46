"""A re-offer from a new peer connection that the far end can apply to its existing one.

When a call's media path is lost, the kiosk recovers it with a new aiortc peer connection
(aiortc has no ICE restart) and sends its offer in the same call. The web app applies an offer
from its peer with setRemoteDescription on the connection it has, and Chromium refuses one
that renumbers what was negotiated ("RTP extension ID reassignment not supported"). aiortc
numbers MIDs, payload types and header extensions its own way, so the new offer is reshaped
like the last negotiated session (PROTOCOL.md, re-offers): the same MIDs in the same order,
only the negotiated codecs under their negotiated payload types (RTX following its codec),
only the negotiated header extensions under their IDs. New ICE credentials and a new DTLS
fingerprint stay: to the browser they are an ICE restart and a new DTLS association.

`negotiated` is the answer of the last offer/answer exchange (ours or the peer's): it lists
exactly what both sides agreed on.
"""

from __future__ import annotations

from aiortc import sdp
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


class ReofferError(Exception):
    """The session cannot be re-offered in this shape; the message says why."""


def media_kinds(negotiated: str) -> list[str]:
    """The kinds of the negotiated session's m-sections, in order: the new connection's
    transceivers must follow them. Raises ReofferError for a session we cannot rebuild."""
    session = sdp.SessionDescription.parse(negotiated)
    kinds = [media.kind for media in session.media]
    if not kinds or any(kind not in ("audio", "video") for kind in kinds):
        raise ReofferError(f"the session's sections are {kinds}, not only audio and video")
    return kinds


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _shape_codecs(offered: list[RTCRtpCodecParameters],
                  agreed: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    """The offered codecs that were agreed on, under the agreed payload types."""
    agreed_media = [codec for codec in agreed if not _is_rtx(codec)]
    agreed_rtx = {codec.parameters.get("apt"): codec for codec in agreed if _is_rtx(codec)}
    renumbered: dict[int, int] = {}  # offered payload type -> agreed payload type
    shaped: list[RTCRtpCodecParameters] = []
    for codec in offered:
        if _is_rtx(codec):
            continue
        match = next((a for a in agreed_media if is_codec_compatible(codec, a)
                      and a.payloadType not in renumbered.values()), None)
        if match is None or codec.payloadType is None or match.payloadType is None:
            continue
        renumbered[codec.payloadType] = match.payloadType
        codec.payloadType = match.payloadType
        shaped.append(codec)
    for codec in offered:
        apt = codec.parameters.get("apt") if _is_rtx(codec) else None
        base = renumbered.get(apt) if isinstance(apt, int) else None
        if base is not None and base in agreed_rtx:
            codec.payloadType = agreed_rtx[base].payloadType
            codec.parameters["apt"] = base
            shaped.append(codec)
    return shaped


def shape_like(offer: str, negotiated: str) -> str:
    """`offer` (a new connection's) with the MIDs, payload types and header extension IDs of
    `negotiated`. Raises ReofferError when the two do not line up."""
    new = sdp.SessionDescription.parse(offer)
    old = sdp.SessionDescription.parse(negotiated)
    if [m.kind for m in new.media] != [m.kind for m in old.media]:
        raise ReofferError(f"the new offer's sections {[m.kind for m in new.media]} differ "
                           f"from the session's {[m.kind for m in old.media]}")
    for media, agreed in zip(new.media, old.media, strict=True):
        codecs = _shape_codecs(media.rtp.codecs, agreed.rtp.codecs)
        if not codecs:
            raise ReofferError(f"no {media.kind} codec of the session is left to offer")
        media.rtp.codecs = codecs
        media.fmt = [codec.payloadType for codec in codecs]
        ids = {extension.uri: extension.id for extension in agreed.rtp.headerExtensions}
        media.rtp.headerExtensions = [extension for extension in media.rtp.headerExtensions
                                      if extension.uri in ids]
        for extension in media.rtp.headerExtensions:
            extension.id = ids[extension.uri]
        media.rtp.muxId = agreed.rtp.muxId
    for group in new.group:
        if group.semantic == "BUNDLE":
            group.items = [media.rtp.muxId for media in new.media]
    return str(new)
