"""A machine-readable stamp in a video frame's luma: frame counter and capture time.

The stamp lets a receiver measure glass-to-glass latency and frame loss through a real codec.
It is a strip of big black/white square cells across the top of the picture. Each row starts
with a few sync cells (a fixed pattern per row, half white, half black) followed by data
cells. The sync cells give the row's black and white levels, so the reader's threshold
follows whatever the codec did to contrast. The 96 data bits are

    counter (32) | capture_ms (40) | CRC-24/OpenPGP of the first 72 bits (24)

Two layouts, both sized as fractions of the width (so a scaled frame still reads; the reader
tries both):

- wide, for pictures 640 and more wide: 3 rows of 40 cells (8 sync + 32 data), cells of
  width/40 (16 px at 640, 32 px at 1280): a strip width * 3/40 high.
- narrow, below 640: 6 rows of 20 cells (4 sync + 16 data), cells of width/20 (16 px at 320):
  a strip width * 6/20 high.

Why cells of at least 16 px: the codecs work in 16x16 macroblocks. With 8 px cells a
macroblock holds four cells, and libvpx's temporal denoiser (aiortc runs it with
noise-sensitivity 4) took a macroblock where only some cells changed for noise and blended
it with the previous frame: about 8% of 320x240 frames came out mixed. With a cell per
macroblock every change is a whole-macroblock change and none did.

A read that is unsure returns None rather than a wrong value: the sync cells must match,
the contrast must be clear, every data cell must be clearly black or white, and the CRC
must agree. The CRC matters when an encoder short of bits updates only some blocks of the
stamp: the mix of two stamps then fails the CRC, but for one in 2**24 such frames.

Pure numpy; the reader looks at 9 pixels near each cell's centre and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

COUNTER_BITS = 32
TIME_BITS = 40
TIME_MODULUS = 1 << TIME_BITS
MESSAGE_BITS = COUNTER_BITS + TIME_BITS + 24
BLACK = 16  # nominal video-range levels: no converter clips them
WHITE = 235
MIN_CELL = 16  # pixels: one codec macroblock

# A cell's level must be at least this share of the row's contrast away from the threshold.
_MARGIN = 0.2
# Rows whose sync cells show less contrast than this are not a stamp.
_MIN_CONTRAST = 32.0
# Where inside a cell the reader samples (fractions of the cell size), 3x3 points.
_SAMPLE_AT = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Layout:
    """A grid of `rows` x `columns` square cells of width/columns pixels."""

    columns: int
    sync: tuple[tuple[int, ...], ...]  # one pattern per row; its length is the sync cells

    @property
    def rows(self) -> int:
        return len(self.sync)

    @property
    def sync_cells(self) -> int:
        return len(self.sync[0])

    def height(self, width: int) -> int:
        """How many top rows of a `width`-wide picture the stamp covers."""
        return -(-self.rows * width // self.columns)  # ceil


# Each row's pattern differs, so rows read out of order don't pass.
WIDE = Layout(40, ((1, 0, 1, 1, 0, 1, 0, 0), (1, 1, 0, 0, 1, 0, 1, 0), (1, 0, 0, 1, 1, 0, 0, 1)))
NARROW = Layout(
    20, ((1, 0, 1, 0), (1, 1, 0, 0), (1, 0, 0, 1), (0, 1, 1, 0), (0, 0, 1, 1), (0, 1, 0, 1))
)
assert all(
    layout.rows * (layout.columns - layout.sync_cells) == MESSAGE_BITS for layout in (WIDE, NARROW)
)


def layout_for(width: int) -> Layout:
    """The layout written into a picture `width` pixels wide."""
    return WIDE if width / WIDE.columns >= MIN_CELL else NARROW


def stamp_height(width: int) -> int:
    """How many top rows of a `width`-wide picture the stamp covers."""
    return layout_for(width).height(width)


def _crc24_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc = ((crc << 1) ^ 0x864CFB) if crc & 0x800000 else (crc << 1)
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_CRC24_TABLE = _crc24_table()


def _crc24(data: bytes) -> int:
    """CRC-24/OpenPGP (poly 0x864CFB, init 0xB704CE): misses 1 in 2**24 random corruptions."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[(crc >> 16) ^ byte]
    return crc


def _payload(counter: int, capture_ms: int) -> bytes:
    return counter.to_bytes(4, "big") + capture_ms.to_bytes(5, "big")


def _cells(layout: Layout, counter: int, capture_ms: int) -> np.ndarray:
    payload = _payload(counter, capture_ms)
    message = payload + _crc24(payload).to_bytes(3, "big")
    bits = np.unpackbits(np.frombuffer(message, dtype=np.uint8))
    cells = np.empty((layout.rows, layout.columns), dtype=np.uint8)
    cells[:, : layout.sync_cells] = layout.sync
    cells[:, layout.sync_cells :] = bits.reshape(layout.rows, -1)
    return cells


@lru_cache(maxsize=16)
def _column_of_pixel(columns: int, width: int) -> np.ndarray:
    return (np.arange(width) * columns) // width


def write_stamp(y_plane: np.ndarray, counter: int, capture_ms: int) -> None:
    """Draw the stamp into the top rows of `y_plane` (H x W uint8, modified in place).

    `counter` is taken modulo 2**32 and `capture_ms` modulo 2**40. Raises ValueError if the
    picture is too small (under 80 pixels wide, or shorter than the stamp).
    """
    height, width = y_plane.shape
    layout = layout_for(width)
    cell = width / layout.columns
    if cell < 4 or height < layout.height(width):
        raise ValueError(f"a {width}x{height} picture is too small for a stamp")
    cells = _cells(layout, counter % (1 << COUNTER_BITS), capture_ms % TIME_MODULUS)
    levels = np.where(cells, WHITE, BLACK).astype(np.uint8)
    levels = levels[:, _column_of_pixel(layout.columns, width)]
    for row in range(layout.rows):
        top, bottom = -(-row * width // layout.columns), -(-(row + 1) * width // layout.columns)
        y_plane[top:bottom, :] = levels[row]


@lru_cache(maxsize=8)  # one pair per layout and frame width; read on every frame
def _sample_points(layout: Layout, width: int) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = layout.rows, layout.columns
    cell = width / columns
    offsets = np.array(_SAMPLE_AT)
    ys = ((np.arange(rows)[:, None] + offsets[None, :]) * cell).astype(np.intp)
    xs = ((np.arange(columns)[:, None] + offsets[None, :]) * cell).astype(np.intp)
    ys = np.broadcast_to(ys[:, None, :, None], (rows, columns, 3, 3))
    xs = np.broadcast_to(xs[None, :, None, :], (rows, columns, 3, 3))
    return ys.reshape(-1).copy(), xs.reshape(-1).copy()


def _may_be_stamped(y_plane: np.ndarray, layout: Layout) -> bool:
    """Whether the centres of the first row's sync cells show its pattern: most pictures (a
    browser's camera) carry no stamp, and eight pixels tell, at a tiny part of a full read."""
    cell = y_plane.shape[1] / layout.columns
    middle = int(cell / 2)
    centres = [int(y_plane[middle, int((i + 0.5) * cell)]) for i in range(layout.sync_cells)]
    pattern = layout.sync[0]
    whites = [level for level, white in zip(centres, pattern, strict=True) if white]
    blacks = [level for level, white in zip(centres, pattern, strict=True) if not white]
    return min(whites) - max(blacks) >= _MIN_CONTRAST / 2


def _levels(sync: np.ndarray, pattern_bits: tuple[int, ...]) -> tuple[float, float] | None:
    """A row's threshold and margin from its sync cells' levels; None unless every sync cell
    sits clearly on its own side."""
    pattern = np.array(pattern_bits, dtype=bool)
    white, black = sync[pattern].mean(), sync[~pattern].mean()
    contrast = white - black
    if contrast < _MIN_CONTRAST:
        return None
    threshold = (white + black) / 2
    margin = _MARGIN * contrast
    if np.any(sync[pattern] < threshold + margin) or np.any(sync[~pattern] > threshold - margin):
        return None
    return threshold, margin


def _read(y_plane: np.ndarray, layout: Layout) -> tuple[int, int] | None:
    height, width = y_plane.shape
    if width < layout.columns * 4 or height < layout.height(width):
        return None
    rows, columns, sync_cells = layout.rows, layout.columns, layout.sync_cells
    if not _may_be_stamped(y_plane, layout):
        return None
    ys, xs = _sample_points(layout, width)
    levels = y_plane[ys, xs].reshape(rows, columns, 9).mean(axis=2)
    bits = np.empty((rows, columns - sync_cells), dtype=np.uint8)
    for row in range(rows):
        found = _levels(levels[row, :sync_cells], layout.sync[row])
        if found is None:
            return None
        threshold, margin = found
        data = levels[row, sync_cells:]
        if np.any(np.abs(data - threshold) < margin):
            return None
        bits[row] = data > threshold
    message = np.packbits(bits.reshape(-1)).tobytes()
    payload, crc = message[:9], int.from_bytes(message[9:], "big")
    if _crc24(payload) != crc:
        return None
    return int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:], "big")


def read_stamp(y_plane: np.ndarray) -> tuple[int, int] | None:
    """The (counter, capture_ms) stamped in `y_plane`, or None if there is no clean stamp."""
    if y_plane.ndim != 2:
        return None
    first = layout_for(y_plane.shape[1])
    second = NARROW if first is WIDE else WIDE  # in case the frame was scaled across 640
    return _read(y_plane, first) or _read(y_plane, second)


# 8-bit formats whose first plane is the luma, one byte a pixel.
_LUMA_FIRST_FORMATS = frozenset(
    {
        "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
        "yuv411p", "yuv410p", "yuva420p", "nv12", "nv21", "gray",
    }
)  # fmt: skip


def luma_of(frame: av.VideoFrame) -> np.ndarray:
    """The frame's luma as an H x W uint8 array, without colour conversion where possible.

    For planar YUV, NV12/NV21 and gray frames this is a view of the Y plane with the line
    padding sliced off (nothing is copied); other formats are converted to gray.
    """
    if frame.format.name in _LUMA_FIRST_FORMATS:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
        return rows[: frame.height, : frame.width]
    return frame.to_ndarray(format="gray")


def read_stamp_from_frame(frame: av.VideoFrame) -> tuple[int, int] | None:
    """The (counter, capture_ms) stamped in a decoded video frame, or None."""
    return read_stamp(luma_of(frame))


def latency_ms(capture_ms: int, now_ms: int) -> int:
    """now_ms - capture_ms, both modulo 2**40 (wall-clock milliseconds); negative if skewed."""
    delta = (now_ms - capture_ms) % TIME_MODULUS
    return delta - TIME_MODULUS if delta >= TIME_MODULUS // 2 else delta
