"""Render cost of the kiosk screen: a 30 fps stream shown full screen on a 1280x720 Xvfb.

For each source size, a synthetic 30 fps camera feeds the per-call sink
(`kioskd.ui.make_video_sink`) while the local preview (320x240, 30 fps) feeds the
picture-in-picture, as in a video call. After a one-second settle, it measures for
`--seconds`:

- render cost per frame (ms, p50/p95): reformat (scale + convert, in C) + paint and overlays
  + flip, taken in the render thread around each remote frame; and each part's p50;
- the frame rate held on screen, against the rate received;
- the process's CPU (all threads, the synthetic cameras included) in % of one core.

Also the start-up numbers the issue asks for: screen start -> idle screen on the display,
and call connected -> first remote frame on the display. Prints one JSON line.

    .venv/bin/python -m bench.render_cost [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time

from tests.support.screen_probe import ScreenProbe
from tests.support.xvfb import running_xvfb

SOURCES = [(1280, 720), (640, 480)]
FPS = 30


async def feed_preview(screen, camera) -> None:
    while True:
        screen.show_preview(await camera.recv())


async def measure(width: int, height: int, seconds: float) -> dict:
    from kioskd.media.synthetic import SyntheticCamera
    from kioskd.ui import KioskScreen, View, make_video_sink
    from kioskd.ui import view as v

    screen = KioskScreen("fullscreen", preview_corner="bottom-right")
    probe = ScreenProbe(screen)
    started = time.monotonic()
    await screen.start()
    try:
        screen.update(View(kiosk_name="Bench", online=True, signaling_status="online"))
        await probe.wait_for_screen(v.IDLE, timeout=5)
        start_to_idle = screen.stats()["first_screen_at"][v.IDLE] - started

        camera = SyntheticCamera(width, height, fps=FPS)
        preview_camera = SyntheticCamera(320, 240, fps=FPS)
        sink = make_video_sink(screen)
        sink.add_track(camera)
        connected_at = time.monotonic()
        screen.update(View(state="connected", peer_name="Caller", connected_since=connected_at,
                           kiosk_name="Bench", online=True, signaling_status="online"))
        await sink.start()
        preview = asyncio.create_task(feed_preview(screen, preview_camera))
        try:
            await probe.wait_for_rendered(1, timeout=5, sink=sink)
            connected_to_frame = screen.call_first_rendered_at - connected_at
            await asyncio.sleep(1.0)  # settle: not measured
            rendered, received = screen.rendered_frames, sink.video_frames
            dropped, flips = screen.dropped_frames, screen.stats()["screens_drawn"]
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)  # the measuring window itself, not synchronisation
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            stats = screen.stats()
            rendered_fps = (screen.rendered_frames - rendered) / wall
            received_fps = (sink.video_frames - received) / wall
            dropped = screen.dropped_frames - dropped
            flips_per_s = (stats["screens_drawn"] - flips) / wall
        finally:
            preview.cancel()
            await asyncio.gather(preview, return_exceptions=True)
            camera.stop()
            preview_camera.stop()
            await sink.stop()
    finally:
        await screen.stop()

    def ms(key: str) -> float | None:
        value = stats[key]
        return None if value is None else round(value, 2)

    return {
        "source": f"{width}x{height}@{FPS}",
        "screen": "x".join(map(str, stats["screen_size"])),
        "video_path": stats["video_path"],
        "render_cost_ms": {"p50": ms("render_cost_ms_p50"), "p95": ms("render_cost_ms_p95")},
        "convert_ms_p50": ms("convert_ms_p50"),
        "draw_ms_p50": ms("draw_ms_p50"),
        "flip_ms_p50": ms("flip_ms_p50"),
        "rendered_fps": round(rendered_fps, 1),
        "received_fps": round(received_fps, 1),
        "flips_per_s": round(flips_per_s, 1),
        "dropped_frames": dropped,
        "process_cpu_percent": round(100 * cpu / wall, 1),
        "start_to_idle_s": round(start_to_idle, 3),
        "connected_to_first_frame_s": round(connected_to_frame, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with running_xvfb(1280, 720) as display:
        os.environ["DISPLAY"] = display
        os.environ.pop("SDL_VIDEODRIVER", None)
        os.environ.pop("WAYLAND_DISPLAY", None)
        results = [asyncio.run(measure(w, h, args.seconds)) for w, h in SOURCES]
    print(json.dumps({"bench": "render_cost", "display": "Xvfb 1280x720 fullscreen",
                      "results": results,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
