"""The kiosk's screen and inputs: pygame screens for every call state, keys, touch, GPIO.

    screen = KioskScreen("fullscreen", preview_corner="bottom-right", sleep_after_s=300,
                         on_command=handle_command)
    await screen.start()
    screen.update(View(state="idle", kiosk_name="Lobby", online=True))
    sink = make_video_sink(screen)  # per call
    ...
    await screen.stop()

Importing this package needs no SDL: pygame is imported by the render thread.

Its rooms, one job each:

    screen.py        KioskScreen: what the daemon calls; every call returns at once
    slots.py         the hand-over to the render thread: newest-only slots, one wake-up
    display.py       the render thread: owns SDL, runs the passes, calls the observers
    renderer.py      what to draw when (frame scheduling), on the render thread
    video.py         remote and preview frames converted for the screen (swscale)
    interaction.py   keys, touch, GPIO buttons to commands; in-call buttons; sleep, backlight
    input.py, gpio.py  the key table and hit-testing; gpiozero's buttons
    stats.py         frames drawn, frame rate, render cost
    view.py          the View the app hands over, and which screen it means (pure)
    presentation.py  what each screen says: texts, colours, buttons (pure)
    painting.py      lays out and paints a presentation with pygame
    sink.py          ScreenSink: one call's remote tracks, its video to the screen
"""

from .screen import KioskScreen
from .sink import ScreenSink, make_video_sink
from .view import View, screen_for

__all__ = ["KioskScreen", "ScreenSink", "View", "make_video_sink", "screen_for"]
