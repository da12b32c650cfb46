"""The kiosk's encoder settings (rtc/encoding.py): the seam into aiortc, what each speed level
gives libvpx and libx264, the picture that comes out, and reload."""

from __future__ import annotations

import dataclasses
import fractions
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import numpy as np
import pytest
from aiortc.codecs import depayload, get_capabilities
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame

from kioskd.config import schema
from kioskd.media.synthetic import TestPattern
from kioskd.rtc import encoding
from kioskd.rtc.session import MediaPlan, RtcSession

# Luma PSNR of these two seconds of the kiosk's pattern, as measured: VP8 at 500 kbps 50.5 to
# 51.6 dB at the three levels (aiortc's own settings: 49.5), H.264 at 1000 kbps 57.8 to 65.0.
# A smeared picture falls below: the bar frozen by a broken setting gives 41.7.
MIN_PSNR_DB = 45.0
FRAMES = 48  # two seconds at 24 fps: the bar moves 10 pixels a frame


@pytest.fixture(autouse=True)
def restore_aiortc(monkeypatch):
    """Each test starts with aiortc's own coders and the default speed, and leaves them so."""
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", aiortc.rtcrtpsender.get_encoder)
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", aiortc.rtcrtpreceiver.get_decoder)
    monkeypatch.setattr(encoding, "_current", encoding.SPEEDS[encoding.DEFAULT_SPEED])


def codec(name: str, kind: str = "video") -> Any:
    return next(c for c in get_capabilities(kind).codecs if c.name == name)


def pattern() -> list[Any]:
    frames = []
    test_pattern = TestPattern(640, 480)
    for n in range(FRAMES):
        frame = test_pattern.render(n, n, 0)
        frame.pts, frame.time_base = n * 3750, fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def psnr_after_round_trip(encoder: Any, decoder: Any, name: str, bitrate: int) -> float:
    """Luma PSNR (dB) of the pattern encoded, packetized, depayloaded and decoded again."""
    params = codec(name)
    encoder.target_bitrate = bitrate
    errors = []
    for n, frame in enumerate(pattern()):
        payloads, _ = encoder.encode(frame, force_keyframe=n == 0)
        data = b"".join(depayload(params, p) for p in payloads)
        (decoded,) = decoder.decode(JitterFrame(data, n))
        source = frame.to_ndarray(format="gray").astype(np.float64)
        errors.append(np.mean((source - decoded.to_ndarray(format="gray")) ** 2))
    return float(10 * np.log10(255 ** 2 / max(float(np.mean(errors)), 1e-10)))


# -- the seam --------------------------------------------------------------------------------


def test_install_makes_aiortc_use_the_tuned_coders_for_vp8_and_h264_only():
    encoding.install()
    encoding.install()  # idempotent
    get_encoder, get_decoder = aiortc.rtcrtpsender.get_encoder, aiortc.rtcrtpreceiver.get_decoder
    assert type(get_encoder(codec("VP8"))) is encoding.TunedVp8Encoder
    assert type(get_encoder(codec("H264"))) is encoding.TunedH264Encoder
    assert type(get_decoder(codec("VP8"))) is encoding.TunedVp8Decoder
    assert type(get_decoder(codec("H264"))) is encoding.TunedH264Decoder
    assert type(get_encoder(codec("opus", "audio"))) is OpusEncoder
    assert type(get_decoder(codec("opus", "audio"))) is OpusDecoder


def test_the_config_offers_exactly_the_speed_levels():
    info = schema.find_key("video.encoder_speed")
    assert info is not None
    assert info.kind.choices == tuple(encoding.SPEEDS)
    assert info.default == encoding.DEFAULT_SPEED


# -- what the codec contexts get ---------------------------------------------------------------


@pytest.mark.parametrize("speed", list(encoding.SPEEDS))
def test_each_level_reaches_libvpx_and_libx264(speed):
    encoding.configure(speed)
    settings = encoding.SPEEDS[speed]
    vp8 = encoding.kiosk_encoder(codec("VP8"))
    h264 = encoding.kiosk_encoder(codec("H264"))
    frame = pattern()[0]
    vp8_context, h264_context = vp8._context(frame), h264._context(frame)
    assert {k: vp8_context.options[k] for k in settings.vp8} == dict(settings.vp8)
    assert vp8_context.options["noise-sensitivity"] == "0"
    assert vp8_context.options["deadline"] == "realtime"
    assert h264_context.options["preset"] == settings.x264_preset
    assert h264_context.options["tune"] == "zerolatency"
    # Encoding opens the contexts: FFmpeg takes each option it knows out of the dict, so an
    # option left over is one libvpx or libx264 never got (a typo, an older FFmpeg).
    for encoder in (vp8, h264):
        encoder.encode(frame, force_keyframe=True)
        assert encoder.codec.options == {}


def test_the_encoder_keeps_aiortcs_bitrate_handling():
    encoder = encoding.TunedVp8Encoder()
    frames = pattern()
    encoder.target_bitrate = 500_000
    encoder.encode(frames[0])
    first = encoder.codec
    assert first.bit_rate == 500_000
    encoder.target_bitrate = 520_000  # under 10%: the same context
    encoder.encode(frames[1])
    assert encoder.codec is first
    encoder.target_bitrate = 1_500_000  # the caller's estimate rose: a new one, at the new rate
    encoder.encode(frames[2])
    assert encoder.codec is not first and encoder.codec.bit_rate == 1_500_000
    assert encoder.codec.options == {}  # made by the kiosk, not by aiortc


def test_the_decoders_run_on_one_thread():
    assert encoding.TunedVp8Decoder().codec.thread_count == 1
    assert encoding.TunedVp8Decoder().codec.name == "vp8"  # FFmpeg's own, not libvpx
    assert encoding.TunedH264Decoder().codec.thread_count == 1


# -- the picture -------------------------------------------------------------------------------


@pytest.mark.parametrize("speed", list(encoding.SPEEDS))
def test_every_level_keeps_the_picture(speed):
    settings = encoding.SPEEDS[speed]
    assert psnr_after_round_trip(encoding.TunedVp8Encoder(settings), encoding.TunedVp8Decoder(),
                                 "VP8", 500_000) > MIN_PSNR_DB
    assert psnr_after_round_trip(encoding.TunedH264Encoder(settings),
                                 encoding.TunedH264Decoder(), "H264", 1_000_000) > MIN_PSNR_DB


def test_a_smearing_setting_fails_the_picture_check():
    # libvpx skips every block that changed less than this: the bar stops moving.
    broken = dataclasses.replace(encoding.SPEEDS["fast"],
                                 vp8={**encoding.SPEEDS["fast"].vp8, "static-thresh": "100000"})
    assert psnr_after_round_trip(encoding.TunedVp8Encoder(broken), encoding.TunedVp8Decoder(),
                                 "VP8", 500_000) < MIN_PSNR_DB


# -- reload ------------------------------------------------------------------------------------


def test_configure_applies_to_the_next_encoder_not_to_one_in_use():
    encoding.configure("quality")
    in_use = encoding.kiosk_encoder(codec("VP8"))
    encoding.configure("fast")
    following = encoding.kiosk_encoder(codec("VP8"))
    frame = pattern()[0]
    assert in_use._context(frame).options["cpu-used"] == encoding.SPEEDS["quality"].vp8["cpu-used"]
    assert following._context(frame).options["cpu-used"] == encoding.SPEEDS["fast"].vp8["cpu-used"]


def test_an_unknown_speed_is_refused():
    with pytest.raises(ValueError, match="quality, balanced, fast"):
        encoding.configure("ludicrous")


async def test_a_session_installs_the_seam_and_takes_its_configs_speed():
    session = RtcSession("call-1", MediaPlan(None, None, lambda track: None,
                                             encoder_speed="quality"), lambda state: None)
    try:
        assert encoding.current() is encoding.SPEEDS["quality"]
        assert aiortc.rtcrtpsender.get_encoder is encoding.kiosk_encoder
        assert aiortc.rtcrtpreceiver.get_decoder is encoding.kiosk_decoder
    finally:
        await session.close()
