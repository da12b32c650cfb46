"""Drawing the remote picture without the colour-space round trip (issue 16): a prototype.

The same 640x480 yuv420p test-pattern frames (kioskd.media.synthetic.TestPattern), scaled to
960x720 in a 1280x720 window on a private Xvfb, 30 frames a second, drawn three ways:

- `surface`: today's path. swscale (PyAV's reformat, FAST_BILINEAR, one thread) to "bgra"
  at 960x720, one numpy copy into the window surface (kioskd.ui.video.RemoteVideo), flip.
  SDL_FRAMEBUFFER_ACCELERATION=0, as the kiosk sets on X11: the surface is X shared memory.
- `yuv`: an SDL streaming texture in IYUV, updated from the frame's three planes
  (SDL_UpdateYUVTexture) and drawn scaled by SDL (SDL_RenderCopy into the 960x720 rect), then
  Renderer.present(). pygame-ce has no API for either (its Texture is ARGB8888 or ARGB4444
  and is updated from a Surface only), so this goes through ctypes to the libSDL2 pygame
  already loaded, on the SDL_Renderer* of a pygame Renderer (found with SDL_GetWindowFromID
  and SDL_GetRenderer: pygame-ce exposes the window's id, not the pointers). The renderer is
  SDL's software one (--renderer), scale mode nearest or linear.
- each `+overlays`: the in-call overlays on top: the status panel with the name and
  duration, a "Mic off" pill, the 320x240 local preview in its corner at 15 fps (mirrored,
  with its border). On the surface path as today (pygame blits, swscale for the preview);
  on the texture path as textures: text cached as textures (Texture.from_surface), the
  duration re-made once a second, and the preview as a second IYUV texture drawn mirrored
  (SDL_RenderCopyEx) with no swscale at all.
- `yuv+fullscreen-overlay`: the simplest port of painting.py: the overlays painted on one
  transparent 1280x720 surface, uploaded to an ARGB texture every frame and blended on top.

For each: process CPU ms per frame (time.process_time around the frame's work; nothing else
runs in the process), p50/p95; the parts' wall-clock p50; page faults per frame; the Xvfb
server's CPU per frame (it copies the shared-memory image to its screen, on every path); how
far the picture is from swscale's accurate bilinear BT.601 (mean absolute difference of the
960x720 region, 0-255); with overlays, whether they came out on top of the picture (read
back). Each case runs in its own process, round after round (medians over the rounds).
Prints one JSON line.

    .venv/bin/python -m bench.draw_yuv [--frames 90] [--rounds 3] [--renderer software]

`--renderer opengles2` (or opengl) draws the texture path with that renderer and streams the
surface path's window through a texture of it (SDL_FRAMEBUFFER_ACCELERATION), as SDL does on
a Pi's KMS/DRM console. Without a GPU that is Mesa's llvmpipe: the process's CPU then includes
the rasterising threads, and `thread_cpu_ms_p50` (the drawing thread's own) is the part a
GPU would not take over (uploads, commands). On a Pi's console, `--here` draws there:

    SDL_VIDEODRIVER=kmsdrm .venv/bin/python -m bench.draw_yuv --here --renderer opengles2
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WINDOW = (1280, 720)
SOURCE = (640, 480)
PREVIEW = (320, 240)
FPS = 30
WARMUP = 30
CASE_TIMEOUT_S = 60
CASES = ["surface", "surface+overlays", "yuv-nearest", "yuv-linear", "yuv-linear+overlays",
         "yuv-linear+fullscreen-overlay"]

# SDL2's constants (SDL_pixels.h, SDL_render.h)
SDL_PIXELFORMAT_IYUV = 0x56555949  # "IYUV": Y, then U, then V planes (yuv420p)
SDL_TEXTUREACCESS_STREAMING = 1
SDL_FLIP_HORIZONTAL = 1
SCALE_MODES = {"nearest": 0, "linear": 1}
KEEP_HEAP = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728"


class SDLRect(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int),
                ("h", ctypes.c_int)]


class SDLRendererInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("flags", ctypes.c_uint32),
                ("num_texture_formats", ctypes.c_uint32),
                ("texture_formats", ctypes.c_uint32 * 16),
                ("max_texture_width", ctypes.c_int), ("max_texture_height", ctypes.c_int)]


def loaded_sdl2() -> str:
    """The path of the libSDL2 mapped into this process (pygame-ce's bundled copy, or the
    system's when pygame-ce was built against it)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(maxsplit=5)[-1].strip()
            if os.path.basename(path).startswith("libSDL2-2"):
                return path
    raise RuntimeError("libSDL2 is not loaded: import pygame and initialise the display first")


class SDL:
    """The few SDL2 calls pygame-ce does not wrap, on the library pygame already loaded.

    RTLD_NOLOAD: never a second copy of SDL (its own video subsystem, no windows): dlopen
    fails instead. A window found by its id proves it is the same SDL as pygame's.
    """

    def __init__(self) -> None:
        lib = ctypes.CDLL(loaded_sdl2(), mode=os.RTLD_NOLOAD | os.RTLD_NOW)
        p, i, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
        rect = ctypes.POINTER(SDLRect)
        for name, restype, argtypes in [
            ("SDL_GetError", ctypes.c_char_p, []),
            ("SDL_GetPixelFormatName", ctypes.c_char_p, [u32]),
            ("SDL_GetWindowFromID", p, [u32]),
            ("SDL_GetRenderer", p, [p]),
            ("SDL_GetRendererInfo", i, [p, ctypes.POINTER(SDLRendererInfo)]),
            ("SDL_CreateTexture", p, [p, u32, i, i, i]),
            ("SDL_DestroyTexture", None, [p]),
            ("SDL_SetTextureScaleMode", i, [p, i]),
            ("SDL_UpdateYUVTexture", i, [p, rect, p, i, p, i, p, i]),
            ("SDL_RenderCopy", i, [p, p, rect, rect]),
            ("SDL_RenderCopyEx", i, [p, p, rect, rect, ctypes.c_double, p, i]),
        ]:
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
            setattr(self, name[4:], function)

    def check(self, result: int | None) -> None:
        if result is None or (isinstance(result, int) and result < 0):
            raise RuntimeError(self.GetError().decode())

    def renderer_of(self, window_id: int) -> int:
        window = self.GetWindowFromID(window_id)
        renderer = self.GetRenderer(window) if window else None
        if not renderer:
            raise RuntimeError(f"no SDL renderer for window {window_id}: {self.GetError()}")
        return renderer

    def renderer_info(self, renderer: int) -> dict:
        """Its name and the texture formats it draws natively (others SDL converts in C)."""
        info = SDLRendererInfo()
        self.check(self.GetRendererInfo(renderer, ctypes.byref(info)))
        formats = [self.GetPixelFormatName(info.texture_formats[i]).decode()[16:]
                   for i in range(info.num_texture_formats)]
        return {"renderer": info.name.decode(), "native_formats": formats}


class YUVTexture:
    """An IYUV streaming texture fed with a yuv420p av.VideoFrame's planes, as they are."""

    def __init__(self, sdl: SDL, renderer: int, size: tuple[int, int], scale_mode: int) -> None:
        self.sdl, self.renderer = sdl, renderer
        self.texture = sdl.CreateTexture(renderer, SDL_PIXELFORMAT_IYUV,
                                         SDL_TEXTUREACCESS_STREAMING, *size)
        sdl.check(self.texture)
        sdl.check(sdl.SetTextureScaleMode(self.texture, scale_mode))

    def update(self, frame) -> None:
        y, u, v = frame.planes
        address = [ctypes.addressof(ctypes.c_char.from_buffer(plane)) for plane in (y, u, v)]
        self.sdl.check(self.sdl.UpdateYUVTexture(self.texture, None, address[0], y.line_size,
                                                 address[1], u.line_size,
                                                 address[2], v.line_size))

    def draw(self, rect: tuple[int, int, int, int], mirror: bool = False) -> None:
        dst = SDLRect(*rect)
        if mirror:
            self.sdl.check(self.sdl.RenderCopyEx(self.renderer, self.texture, None,
                                                 ctypes.byref(dst), 0.0, None,
                                                 SDL_FLIP_HORIZONTAL))
        else:
            self.sdl.check(self.sdl.RenderCopy(self.renderer, self.texture, None,
                                               ctypes.byref(dst)))

    def destroy(self) -> None:
        if self.texture:
            self.sdl.DestroyTexture(self.texture)
            self.texture = None


def make_frames(size: tuple[int, int], count: int) -> list:
    from kioskd.media.synthetic import TestPattern

    pattern = TestPattern(*size)
    return [pattern.render(i, i, 0) for i in range(count)]


def reference(frame, rect: tuple[int, int, int, int]) -> np.ndarray:
    """swscale's accurate bilinear, BT.601 video range: (height, width, 3) RGB."""
    return frame.reformat(rect[2], rect[3], "rgb24", interpolation="BILINEAR").to_ndarray()


def picture_diff(rgb: np.ndarray, frame, rect: tuple[int, int, int, int]) -> float:
    return round(float(np.abs(rgb.astype(np.int16) - reference(frame, rect)).mean()), 2)


class Overlays:
    """The in-call overlays as surfaces: the status panel (red dot, name and duration), a
    "Mic off" pill and the preview's border, laid out as painting.py does at 1280x720."""

    def __init__(self, pygame) -> None:
        from kioskd.ui import painting

        self.pygame = pygame
        self.theme = painting.Theme(WINDOW)
        self.pip = painting.pip_rect(WINDOW, PREVIEW, "bottom-right")
        self._second, self._pieces = -1, []

    def on_top(self, screen: np.ndarray, rect: tuple[int, int, int, int]) -> bool:
        """Whether the status panel darkens the picture (the overlays were drawn after it):
        the top-left of the picture is the bars' 75 % white (191) and the panel's black at
        200/255 leaves about a fifth of it. `screen` is (x, y) indexed."""
        x, y = rect[0] + 4, self.theme.margin + 4
        return bool(screen[x, y].max() < 80 < screen[x, self.theme.height // 2].min())

    def status_text(self, index: int):
        seconds = index // FPS  # the duration changes once a second
        return self.theme.fit(f"Caller  {seconds // 60:02d}:{seconds % 60:02d}", self.theme.body,
                              round(self.theme.width * 0.4)), seconds

    def pieces(self, index: int) -> list[tuple[str, object, tuple[int, int]]]:
        """(name, surface, position): what is blitted; made again when the second changes."""
        pygame, t = self.pygame, self.theme
        text, second = self.status_text(index)
        if second == self._second:
            return self._pieces
        pad = t.body // 4
        width, height = text.get_width() + 3 * pad + t.body // 2, text.get_height() + 2 * pad
        x = y = t.margin
        panel = t.panel(width, height).copy()
        pygame.draw.circle(panel, (220, 40, 40), (pad + t.body // 4, height // 2), t.body // 5)
        pill_text = t.text("Mic off", t.small, (255, 255, 255))
        small_pad = t.small // 3
        pill = pygame.Surface((pill_text.get_width() + 2 * small_pad,
                               pill_text.get_height() + small_pad), pygame.SRCALPHA)
        pygame.draw.rect(pill, (200, 60, 60), pill.get_rect(), border_radius=pill.get_height() // 3)
        pill.blit(pill_text, (small_pad, small_pad // 2))
        border = max(2, t.height // 240)
        px, py, pw, ph = self.pip
        frame = pygame.Surface((pw + 2 * border, ph + 2 * border), pygame.SRCALPHA)
        pygame.draw.rect(frame, (255, 255, 255), frame.get_rect(), border)
        self._second = second
        self._pieces = [("panel", panel, (x, y)), ("pill", pill, (x, y + height + pad)),
                        ("status", text, (x + 2 * pad + t.body // 2, y + pad)),
                        ("pip_border", frame, (px - border, py - border))]
        return self._pieces


def run_case(case: str, frame_count: int, renderer_index: int) -> dict:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    pygame.display.init()
    pygame.font.init()
    frames = make_frames(SOURCE, FPS)  # one second of the pattern, shown in a loop
    previews = make_frames(PREVIEW, FPS)
    from kioskd.ui.video import letterbox

    rect = letterbox(SOURCE, WINDOW)
    overlays = Overlays(pygame) if "overlay" in case else None
    try:
        if case.startswith("surface"):
            result = _surface_path(pygame, frames, previews, rect, overlays, frame_count)
        else:
            scale = "nearest" if "nearest" in case else "linear"
            result = _texture_path(pygame, frames, previews, rect, overlays, frame_count,
                                   scale, renderer_index, "fullscreen" in case)
    finally:
        pygame.display.quit()
    return {"case": case, **result}


def _surface_path(pygame, frames, previews, rect, overlays, frame_count) -> dict:
    from kioskd.ui.video import PreviewVideo, RemoteVideo, direct_video_ok

    surface = pygame.display.set_mode(WINDOW)
    video = RemoteVideo(direct_video_ok(surface))
    preview = PreviewVideo(mirror=True)
    preview_surface = None
    parts: dict[str, list[float]] = {"convert": [], "paint": [], "flip": []}

    def draw(index: int) -> None:
        nonlocal preview_surface
        t0 = time.perf_counter()
        video.convert(pygame, frames[index % len(frames)], WINDOW)
        t1 = time.perf_counter()
        video.paint(pygame, surface)
        if overlays is not None:
            if index % 2 == 0 or preview_surface is None:  # the preview at 15 fps
                preview_surface = preview.convert(pygame, previews[index % len(previews)],
                                                  *overlays.pip[2:])
            surface.blit(preview_surface, overlays.pip[:2])
            for _, piece, position in overlays.pieces(index):
                surface.blit(piece, position)
        t2 = time.perf_counter()
        pygame.display.flip()
        t3 = time.perf_counter()
        parts["convert"].append(t1 - t0)
        parts["paint"].append(t2 - t1)
        parts["flip"].append(t3 - t2)

    cpu = _paced(draw, frame_count)
    x, y, w, h = rect
    screen = pygame.surfarray.array3d(surface)
    shown = screen[x:x + w, y:y + h].transpose(1, 0, 2)
    last = frames[(WARMUP + frame_count - 1) % len(frames)]
    result = {"video_path": "direct" if video.direct else "blit", **_summary(cpu, parts)}
    if overlays is None:  # the preview and the panel cover part of the picture
        result["picture_diff"] = picture_diff(shown, last, rect)
    else:
        result["overlays_on_top"] = overlays.on_top(screen, rect)
    return result


def _texture_path(pygame, frames, previews, rect, overlays, frame_count, scale, renderer_index,
                  fullscreen_overlay) -> dict:
    from pygame._sdl2.video import Renderer, Texture

    window = pygame.Window("draw_yuv", WINDOW)
    renderer = Renderer(window, index=renderer_index, accelerated=0 if renderer_index < 0 else -1)
    sdl = SDL()
    raw = sdl.renderer_of(window.id)
    video = YUVTexture(sdl, raw, SOURCE, SCALE_MODES[scale])
    preview = YUVTexture(sdl, raw, PREVIEW, SCALE_MODES["linear"]) if overlays else None
    textures: dict[str, tuple[object, tuple[int, int]]] = {}
    remade: list[float] = []  # CPU ms of each Texture.from_surface of a changed text
    layer = layer_texture = None
    if fullscreen_overlay:
        layer = pygame.Surface(WINDOW, pygame.SRCALPHA)
        layer_texture = Texture(renderer, WINDOW, streaming=True)
        layer_texture.blend_mode = 1  # SDL_BLENDMODE_BLEND
    parts: dict[str, list[float]] = {"update": [], "copy": [], "present": []}
    renderer.draw_color = (0, 0, 0, 255)

    def draw(index: int) -> None:
        t0 = time.perf_counter()
        video.update(frames[index % len(frames)])
        if preview is not None and index % 2 == 0:  # the preview at 15 fps
            preview.update(previews[index % len(previews)])
        t1 = time.perf_counter()
        renderer.clear()
        video.draw(rect)
        if overlays is not None and layer is None:
            preview.draw(overlays.pip, mirror=True)
            for name, piece, position in overlays.pieces(index):
                # Text is made once: only a changed one (the duration) becomes a new texture.
                known = textures.get(name)
                if known is None or (name == "status" and index % FPS == 0):
                    before = time.process_time()
                    textures[name] = known = (Texture.from_surface(renderer, piece), position)
                    remade.append(time.process_time() - before)
                texture, at = known
                renderer.blit(texture, pygame.Rect(at, texture.get_rect().size))
        elif layer is not None:
            layer.fill((0, 0, 0, 0))
            for _, piece, position in overlays.pieces(index):
                layer.blit(piece, position)
            layer_texture.update(layer)
            renderer.blit(layer_texture, pygame.Rect((0, 0), WINDOW))
        t2 = time.perf_counter()
        renderer.present()
        t3 = time.perf_counter()
        parts["update"].append(t1 - t0)
        parts["copy"].append(t2 - t1)
        parts["present"].append(t3 - t2)

    try:
        cpu = _paced(draw, frame_count)
        x, y, w, h = rect
        screen = pygame.surfarray.array3d(renderer.to_surface())
        shown = screen[x:x + w, y:y + h].transpose(1, 0, 2)
        last = frames[(WARMUP + frame_count - 1) % len(frames)]
        result = {**sdl.renderer_info(raw), "scale_mode": scale,
                  **_summary(cpu, parts)}
        if overlays is None:
            result["picture_diff"] = picture_diff(shown, last, rect)
        else:
            result["overlays_on_top"] = overlays.on_top(screen, rect)
        if remade:
            result["text_texture_remade_ms_p50"] = round(1000 * statistics.median(remade), 3)
        return result
    finally:
        video.destroy()
        if preview is not None:
            preview.destroy()


def _paced(draw, frame_count: int) -> tuple[list[float], list[float]]:
    """Draw WARMUP + frame_count frames at FPS; the CPU seconds of each measured one: the
    process's (all threads) and the drawing thread's own."""
    cpu: list[float] = []
    thread: list[float] = []
    faults = 0
    period = 1 / FPS
    start = time.monotonic()
    for index in range(WARMUP + frame_count):
        delay = start + index * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if index == WARMUP:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        before, thread_before = time.process_time(), time.thread_time()
        draw(index)
        if index >= WARMUP:
            cpu.append(time.process_time() - before)
            thread.append(time.thread_time() - thread_before)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return cpu, thread, faults / frame_count


def _summary(cpu: tuple[list[float], list[float], float], parts: dict[str, list[float]]) -> dict:
    def ms(values: list[float], q: float) -> float:
        return round(1000 * float(np.quantile(values, q)), 3)

    warm = {name: values[WARMUP:] for name, values in parts.items()}
    process, thread, faults = cpu
    return {"cpu_ms_per_frame": {"p50": ms(process, 0.5), "p95": ms(process, 0.95),
                                 "mean": round(1000 * statistics.fmean(process), 3)},
            "thread_cpu_ms_p50": ms(thread, 0.5),
            "page_faults_per_frame": round(faults, 1),
            "wall_ms_p50": {name: ms(values, 0.5) for name, values in warm.items()}}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _xvfb_pid() -> int | None:
    """Our own Xvfb (a child of this process)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if "(Xvfb)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                return int(entry.name)
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=90, help="measured frames per case")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every case, in turn")
    parser.add_argument("--renderer", default="software",
                        help="SDL render driver of the texture path (software, opengl, ...)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--here", action="store_true",
                        help="draw on this session's display (DISPLAY, or SDL_VIDEODRIVER=kmsdrm "
                             "on a Pi's console), not on a private Xvfb")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in this process
    parser.add_argument("--renderer-index", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        faulthandler.dump_traceback_later(CASE_TIMEOUT_S - 5, exit=True)  # where it hangs
        print(json.dumps(run_case(args.case, args.frames, args.renderer_index)))
        return

    index = -1
    if args.renderer != "software":
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from pygame._sdl2.video import get_drivers

        names = [driver.name for driver in get_drivers()]
        index = names.index(args.renderer)
    cases = args.cases.split(",")
    rounds: dict[str, list[dict]] = {case: [] for case in cases}
    if args.here:
        place = contextlib.nullcontext(os.environ.get("DISPLAY"))
    else:
        from tests.support.xvfb import running_xvfb

        place = running_xvfb(*WINDOW)
    with place as display:
        # The surface path's window: X shared memory as the kiosk has it on X11 (software),
        # or streamed through a texture of that renderer, as SDL does on KMS/DRM.
        framebuffer = "0" if args.renderer == "software" else args.renderer
        env = {**os.environ, "SDL_FRAMEBUFFER_ACCELERATION": framebuffer}
        # A bench process is one thread on glibc's main heap, which hands the 2.7 MB picture
        # swscale makes each frame back to the kernel and faults it in again (~400 page
        # faults, +2 ms a frame here); the kiosk's render thread does not (bench.render_cost
        # is the same with and without this). Keep the heap, so the bench is like the kiosk.
        env.setdefault("GLIBC_TUNABLES", KEEP_HEAP)
        xvfb = None
        if not args.here:
            env["DISPLAY"] = display
            env.pop("SDL_VIDEODRIVER", None)
            env.pop("WAYLAND_DISPLAY", None)
            xvfb = _xvfb_pid()
        # Round after round of every case: the machine's load drifts, and each case gets its
        # share of the quiet and the busy moments.
        for _ in range(args.rounds):
            for case in cases:
                xvfb_before = _cpu_seconds(xvfb) if xvfb else 0.0
                child = _run_child(case, args.frames, index, env)
                if child is None:
                    continue
                result = json.loads(child.stdout.strip().splitlines()[-1])
                if xvfb:  # all the frames, warm-up included, and the window's opening
                    result["xvfb_cpu_ms_per_frame"] = round(
                        1000 * (_cpu_seconds(xvfb) - xvfb_before) / (WARMUP + args.frames), 2)
                rounds[case].append(result)
    where = os.environ.get("SDL_VIDEODRIVER", "this display") if args.here else "Xvfb 1280x720"
    print(json.dumps({"bench": "draw_yuv", "display": f"{where}, window",
                      "window_framebuffer": framebuffer,
                      "source": f"{SOURCE[0]}x{SOURCE[1]} yuv420p @{FPS}, shown at 960x720",
                      "rounds": args.rounds, "frames_per_round": args.frames,
                      "results": [_merge(runs) for runs in rounds.values() if runs],
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}))


def _run_child(case: str, frames: int, renderer_index: int, env: dict):
    """One case in its own process; a second try if it hangs (here pygame.display.init()
    on Xvfb now and then never returned), None if it fails."""
    command = [sys.executable, "-m", "bench.draw_yuv", "--case", case, "--frames", str(frames),
               "--renderer-index", str(renderer_index)]
    for _ in range(2):
        try:
            child = subprocess.run(command, env=env, capture_output=True, text=True,
                                   timeout=CASE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"{case}: timed out, trying again", file=sys.stderr)
            continue
        if child.returncode == 0:
            return child
        print(f"{case} failed:\n{child.stderr}", file=sys.stderr)
    return None


def _merge(runs: list[dict]) -> dict:
    """One case's rounds: the median of each number, and each round's CPU p50."""
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    merged = dict(runs[0])
    merged["cpu_ms_per_frame"] = {
        key: median([run["cpu_ms_per_frame"][key] for run in runs]) for key in ("p50", "p95")}
    merged["cpu_ms_p50_each_round"] = [run["cpu_ms_per_frame"]["p50"] for run in runs]
    merged["thread_cpu_ms_p50"] = median([run["thread_cpu_ms_p50"] for run in runs])
    merged["wall_ms_p50"] = {part: median([run["wall_ms_p50"][part] for run in runs])
                             for part in runs[0]["wall_ms_p50"]}
    for key in ("xvfb_cpu_ms_per_frame", "text_texture_remade_ms_p50", "page_faults_per_frame"):
        if key in merged:
            merged[key] = median([run[key] for run in runs])
    return merged

if __name__ == "__main__":
    main()
