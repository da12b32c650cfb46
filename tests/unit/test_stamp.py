"""The frame stamp: round trips, survives real VP8 and H.264 coding, and never reads wrong."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc.codecs import depayload, get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from kioskd.media.stamp import (
    NARROW,
    WIDE,
    latency_ms,
    layout_for,
    luma_of,
    read_stamp,
    read_stamp_from_frame,
    stamp_height,
    write_stamp,
)
from kioskd.media.synthetic import TestPattern

SIZES = [(320, 240), (640, 480), (1280, 720)]
TIME_BASE = fractions.Fraction(1, 90000)


def blank(width: int, height: int, level: int = 128) -> np.ndarray:
    return np.full((height, width), level, dtype=np.uint8)


@pytest.mark.parametrize("width,height", SIZES + [(322, 242), (1920, 1080)])
@pytest.mark.parametrize(
    "counter,capture_ms", [(0, 0), (1, 1_723_456_789_012 % 2**40), (2**32 - 1, 2**40 - 1)]
)
def test_round_trip_on_a_clean_frame(width: int, height: int, counter: int, capture_ms: int):
    y = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    write_stamp(y, counter, capture_ms)
    assert read_stamp(y) == (counter, capture_ms)


def test_stamp_covers_only_its_strip():
    y = blank(640, 480)
    write_stamp(y, 5, 6)
    assert stamp_height(640) == 48
    assert np.all(y[stamp_height(640) :] == 128)
    assert set(np.unique(y[: stamp_height(640)])) == {16, 235}


def test_values_wrap_to_their_field_widths():
    y = blank(320, 240)
    write_stamp(y, 2**32 + 7, 2**40 + 9)
    assert read_stamp(y) == (7, 9)


def test_too_small_a_picture():
    for width, height in [(60, 40), (320, 90)]:
        with pytest.raises(ValueError):
            write_stamp(blank(width, height), 1, 2)
        assert read_stamp(blank(width, height)) is None


def test_a_scaled_frame_still_reads():
    frame = TestPattern(1280, 720).render(0, 424242, 99)
    small = frame.reformat(width=480, height=270)
    assert read_stamp_from_frame(small) == (424242, 99)


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "gray", "rgb24"])
def test_read_from_frames_with_line_padding(fmt: str):
    # 322 is not a multiple of the line alignment, so the planes carry padding.
    frame = TestPattern(322, 240).render(3, 77, 123456).reformat(format=fmt)
    assert frame.planes[0].line_size != 322 * (3 if fmt == "rgb24" else 1)
    assert read_stamp_from_frame(frame) == (77, 123456)


def test_luma_is_a_view_for_yuv():
    frame = TestPattern(322, 240).render(0, 1, 2)
    luma = luma_of(frame)
    assert luma.shape == (240, 322)
    assert not luma.flags.owndata


def codec_parameters(name: str) -> RTCRtpCodecParameters:
    parameters = {"packetization-mode": "1"} if name == "H264" else {}
    return RTCRtpCodecParameters(
        mimeType=f"video/{name}", clockRate=90000, payloadType=100, parameters=parameters
    )


def code_and_read(
    name: str, frames: list[av.VideoFrame], bitrate: int
) -> list[tuple[int, int] | None]:
    """Encode with aiortc's encoder at `bitrate`, depayload, decode, read each stamp."""
    codec = codec_parameters(name)
    encoder, decoder = get_encoder(codec), get_decoder(codec)
    encoder.target_bitrate = bitrate  # clamped to the codec's range
    results = []
    for index, frame in enumerate(frames):
        frame.pts, frame.time_base = index * 3000, TIME_BASE
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        data = b"".join(depayload(codec, payload) for payload in payloads)
        decoded = decoder.decode(JitterFrame(data, timestamp))
        assert len(decoded) == 1  # realtime settings: one picture out per picture in
        results.append(read_stamp_from_frame(decoded[0]))
    return results


@pytest.mark.parametrize("codec", ["VP8", "H264"])
@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("bitrate", [0, 10**9], ids=["min-bitrate", "max-bitrate"])
def test_survives_a_real_codec(codec: str, width: int, height: int, bitrate: int):
    pattern = TestPattern(width, height)
    stamps = [(1000 + i, (1_700_000_000_000 + 33 * i) % 2**40) for i in range(20)]
    frames = [pattern.render(i, *stamp) for i, stamp in enumerate(stamps)]
    assert code_and_read(codec, frames, bitrate) == stamps


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_a_starved_codec_gives_none_never_a_wrong_stamp(codec: str):
    # Noise at the lowest bitrate: the encoder runs out of bits and updates only parts of
    # the stamp. Those frames must read as None; many still read right (39 of 60 here).
    rng = np.random.default_rng(1)
    stamps = [(7 * i, 10**11 + i) for i in range(30)]
    frames = []
    for stamp in stamps:
        yuv = rng.integers(0, 256, (480 * 3 // 2, 640), dtype=np.uint8)
        write_stamp(yuv[:480], *stamp)
        frames.append(av.VideoFrame.from_ndarray(yuv, format="yuv420p"))
    results = code_and_read(codec, frames, 0)
    assert all(result in (None, stamp) for result, stamp in zip(results, stamps))
    assert sum(result == stamp for result, stamp in zip(results, stamps)) >= len(stamps) // 4


def test_noise_frames_read_as_none():
    rng = np.random.default_rng(2)
    for _ in range(200):
        width, height = SIZES[rng.integers(len(SIZES))]
        assert read_stamp(rng.integers(0, 256, (height, width), dtype=np.uint8)) is None


@pytest.mark.parametrize("width,height", [(320, 240), (640, 480)])
def test_random_cells_with_valid_sync_read_as_none(width: int, height: int):
    # The hardest junk: right grid, right sync cells, random data cells. Only the CRC stands.
    rng = np.random.default_rng(3)
    layout = layout_for(width)
    y = blank(width, height)
    write_stamp(y, 0, 0)
    cell = width // layout.columns
    for _ in range(200):
        for row in range(layout.rows):
            for column in range(layout.sync_cells, layout.columns):
                level = 235 if rng.integers(2) else 16
                y[row * cell : (row + 1) * cell, column * cell : (column + 1) * cell] = level
        assert read_stamp(y) is None


@pytest.mark.parametrize("width,height", [(320, 240), (640, 480)])
@pytest.mark.parametrize("damage", ["flip", "grey", "flip-sync", "low-contrast"])
def test_corrupted_stamps_read_as_none(damage: str, width: int, height: int):
    rng = np.random.default_rng(4)
    layout = layout_for(width)
    cell = width // layout.columns
    strip = stamp_height(width)
    sync = damage == "flip-sync"
    first_column = 0 if sync else layout.sync_cells
    last_column = layout.sync_cells if sync else layout.columns
    columns = last_column - first_column
    for trial in range(50):
        y = blank(width, height)
        write_stamp(y, int(rng.integers(2**32)), int(rng.integers(2**40)))
        if damage == "low-contrast":
            y[:strip] = 120 + (y[:strip] > 128) * 12
        for cell_index in rng.choice(layout.rows * columns, size=1 + trial % 5, replace=False):
            row, column = divmod(int(cell_index), columns)
            column += first_column
            block = y[row * cell : (row + 1) * cell, column * cell : (column + 1) * cell]
            if damage == "grey":
                block[:] = 126
            elif damage != "low-contrast":
                block[:] = 251 - block
        assert read_stamp(y) is None


def test_layouts():
    assert layout_for(320) is NARROW and layout_for(639) is NARROW
    assert layout_for(640) is WIDE and layout_for(1920) is WIDE
    assert [stamp_height(w) for w in (320, 640, 1280)] == [96, 48, 96]
    # Cells are at least a 16x16 macroblock at the sizes a kiosk sends.
    assert 320 / NARROW.columns == 16 and 640 / WIDE.columns == 16


def test_latency_wraps_and_goes_negative():
    assert latency_ms(1000, 1150) == 150
    assert latency_ms(2**40 - 10, 5) == 15
    assert latency_ms(1150, 1000) == -150
