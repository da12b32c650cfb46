"""Video conversion for the screen: the remote picture and the local preview, by swscale.

Each remote frame is scaled, in C (libswscale via `reformat`), to the largest size that fits
the screen, then converted into the display's own pixel layout when it is the usual 32-bit
XRGB (then one memory copy puts it on screen), else to RGB and blitted. Scaling in YUV and
then converting at the final size takes two swscale passes but a third less CPU than doing
both in one (640x480 shown at 960x720: 0.70 against 1.05 ms alone, 1.4 against 1.8 ms in the
render thread, measured here): the unscaled
YUV -> BGRA conversion has swscale's fast SIMD path, the combined one does not. The
preview is scaled to its picture-in-picture size and mirrored. Runs in the render thread,
which passes pygame in: importing this module needs no SDL.
"""

from __future__ import annotations

import sys
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# swscale's fast bilinear: 0.43 instead of 0.62 ms to scale 640x480 to 960x720; on a moving
# picture at kiosk distance the difference is not visible.
SCALING = "FAST_BILINEAR"
# One thread: swscale's own slice threads (one per core by default) make it a little quicker
# and cost more CPU in all (0.62 instead of 0.55 ms a 960x720 frame, measured here).
SCALING_THREADS = 1


def letterbox(
    frame_size: tuple[int, int], screen_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the largest centred picture with the frame's aspect ratio."""
    frame_w, frame_h = frame_size
    screen_w, screen_h = screen_size
    scale = min(screen_w / frame_w, screen_h / frame_h)
    width = max(1, min(screen_w, round(frame_w * scale)))
    height = max(1, min(screen_h, round(frame_h * scale)))
    return (screen_w - width) // 2, (screen_h - height) // 2, width, height


def direct_video_ok(surface: Any) -> bool:
    """True if the display's pixels are 32-bit XRGB, B G R X in memory: swscale's "bgra"."""
    return (surface.get_bitsize() == 32 and sys.byteorder == "little"
            and tuple(surface.get_masks()[:3]) == (0xFF0000, 0x00FF00, 0x0000FF))


class RemoteVideo:
    """The last remote picture, converted for the screen, and how to put it there."""

    def __init__(self, direct: bool) -> None:
        # direct: the display is 32-bit XRGB in memory order B, G, R, X (little-endian), so
        # swscale's "bgra" is its own layout and a numpy copy is the whole blit.
        self.direct = direct
        self.rect: tuple[int, int, int, int] | None = None
        self._pixels: np.ndarray | None = None
        self._surface: Any = None
        self._reformatter = VideoReformatter()  # keeps its swscale context between frames
        self._scaler = VideoReformatter()  # the YUV scaling step, with its own context

    def convert(self, pygame: Any, frame: av.VideoFrame, screen_size: tuple[int, int]) -> None:
        rect = letterbox((frame.width, frame.height), screen_size)
        _, _, width, height = rect
        if self.direct:
            if (frame.width, frame.height) != (width, height):
                frame = self._scaler.reformat(frame, width, height, "yuv420p",
                                              interpolation=SCALING, threads=SCALING_THREADS)
            bgra = self._reformatter.reformat(frame, width, height, "bgra",
                                              threads=SCALING_THREADS).to_ndarray()
            self._pixels = np.ascontiguousarray(bgra).view(np.uint32)[..., 0]
        else:
            rgb = self._reformatter.reformat(frame, width, height, "rgb24", interpolation=SCALING,
                                             threads=SCALING_THREADS)
            # to_ndarray drops the line padding; frombuffer needs contiguous rows.
            self._pixels = np.ascontiguousarray(rgb.to_ndarray())
            self._surface = pygame.image.frombuffer(self._pixels, (width, height), "RGB")
        self.rect = rect

    def paint(self, pygame: Any, surface: Any) -> None:
        assert self.rect is not None and self._pixels is not None
        x, y, width, height = self.rect
        if self.direct:
            target = pygame.surfarray.pixels2d(surface)  # (x, y) indexed, locks the surface
            try:
                target[x:x + width, y:y + height] = self._pixels.T
            finally:
                del target  # unlocks
        else:
            surface.blit(self._surface, (x, y))
        # The bars: overlays may have been drawn there last frame.
        screen_w, screen_h = surface.get_size()
        black = (0, 0, 0)
        if x > 0:
            surface.fill(black, (0, 0, x, screen_h))
            surface.fill(black, (x + width, 0, screen_w - x - width, screen_h))
        if y > 0:
            surface.fill(black, (0, 0, screen_w, y))
            surface.fill(black, (0, y + height, screen_w, screen_h - y - height))

    def clear(self) -> None:
        self.rect = self._pixels = self._surface = None


class PreviewVideo:
    """The local camera, scaled to its picture-in-picture and (by default) mirrored."""

    def __init__(self, mirror: bool) -> None:
        self.mirror = mirror
        self._reformatter = VideoReformatter()

    def convert(self, pygame: Any, frame: av.VideoFrame, width: int, height: int) -> Any:
        rgb = np.ascontiguousarray(self._reformatter.reformat(
            frame, width, height, "rgb24", interpolation=SCALING,
            threads=SCALING_THREADS).to_ndarray())
        picture = pygame.image.frombuffer(rgb, (width, height), "RGB")
        # A mirror is what people expect of themselves; flip also copies off the buffer.
        return pygame.transform.flip(picture, self.mirror, False)
