"""The kiosk's screen and inputs: pygame screens for every call state, keys, touch, GPIO.

    screen = KioskScreen("fullscreen", preview_corner="bottom-right", sleep_after_s=300,
                         on_command=handle_command)
    await screen.start()
    screen.update(View(state="idle", kiosk_name="Lobby", online=True))
    sink = make_video_sink(screen)  # per call
    ...
    await screen.stop()

Importing this package needs no SDL: pygame is imported by the render thread.
"""

from .screen import KioskScreen, ScreenSink, make_video_sink
from .view import View, screen_for

__all__ = ["KioskScreen", "ScreenSink", "View", "make_video_sink", "screen_for"]
