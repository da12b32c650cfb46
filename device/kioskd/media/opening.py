"""Opening a call's camera or microphone, with the fallbacks the web app has.

`open_device` runs on a worker thread (opening a device is blocking I/O) and handles the two
set-up fallbacks whose cure is to try again:

- busy (another program has the device): retry with backoff (full jitter, capped) for at
  most BUSY_RETRY_S, then give up: the call goes on without the device. The kiosk would
  rather answer without its camera than keep a caller waiting.
- unsupported (the camera refused the configured mode): try the basic settings, the ones
  the web app asks of an iPhone's camera (PROTOCOL.md: 640x480@24), and for a V4L2 camera
  also in its other input format.

A missing or forbidden device is not retried: waiting will not plug it in.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..policy.backoff import Backoff
from .capture import DeviceUnavailable

log = logging.getLogger(__name__)

# How long a call's set-up keeps retrying a busy device, in total (seconds).
BUSY_RETRY_S = 2.5
BUSY_RETRY_BASE_S = 0.2  # the first retry within this; each later one within twice as long
BUSY_RETRY_CAP_S = 1.0  # ... but never more than this apart
BUSY_RETRY_MIN_S = 0.05  # full jitter can draw 0: never retry in a tight loop

BASIC_VIDEO = {"width": 640, "height": 480, "fps": 24}
_OTHER_INPUT_FORMAT = {"mjpeg": "yuyv422", "yuyv422": "mjpeg"}  # V4L2's two, see v4l2.py


@dataclass
class Opened:
    track: Any
    # When basic settings replaced the configured ones: "refused 1280x720@30; using the
    # basic settings 640x480@24"
    fallback: str | None = None


def describe(options: dict[str, Any]) -> str:
    """A camera mode as the log says it: "1280x720@30", "mjpeg 640x480@24"."""
    if "width" not in options:
        return "its settings"
    mode = f"{options['width']}x{options['height']}@{options['fps']:g}"
    return f"{options['input_format']} {mode}" if options.get("input_format") else mode


def basic_modes(options: dict[str, Any]) -> list[dict[str, Any]]:
    """The modes to try, in order, after a camera refused `options`."""
    basic = {**options, **BASIC_VIDEO}
    if "bitrate" in basic:
        basic["bitrate"] = None  # the encoder's default for the basic size
    modes = [basic] if basic != options else []
    other = _OTHER_INPUT_FORMAT.get(options.get("input_format") or "")
    if other:
        modes.append({**basic, "input_format": other})
    return modes


def open_device(
    factory: Callable[..., Any],
    modes: Sequence[dict[str, Any]],
    name: str,
    *,
    budget_s: float | None = None,
    rand: Callable[[], float] = random.random,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Opened:
    """`factory(**modes[0])`, or with the next mode while a mode is refused ("unsupported"),
    each retried while the device is busy, for `budget_s` (BUSY_RETRY_S) in all.

    `name` says which device in the log ("video.source 'v4l2'"). Blocks: call it on a worker
    thread. Raises the last DeviceUnavailable (or any other error of the factory).
    """
    budget = BUSY_RETRY_S if budget_s is None else budget_s
    deadline = clock() + budget
    backoff = Backoff(base_s=BUSY_RETRY_BASE_S, cap_s=BUSY_RETRY_CAP_S, rand=rand)
    for index, options in enumerate(modes):
        try:
            track = _open_when_free(factory, options, name, backoff, deadline, sleep, clock)
        except DeviceUnavailable as exc:
            if exc.reason != "unsupported" or index == len(modes) - 1:
                raise
            log.warning("%s refused %s (%s); trying the basic settings %s", name,
                        describe(options), exc, describe(modes[index + 1]))
            continue
        if index == 0:
            return Opened(track)
        fallback = f"refused {describe(modes[0])}; using the basic settings {describe(options)}"
        log.warning("%s %s", name, fallback)
        return Opened(track, fallback)
    raise ValueError("open_device needs at least one mode")


def _open_when_free(factory: Callable[..., Any], options: dict[str, Any], name: str,
                    backoff: Backoff, deadline: float, sleep: Callable[[float], None],
                    clock: Callable[[], float]) -> Any:
    tries = 0
    started = clock()
    while True:
        tries += 1
        try:
            return factory(**options)
        except DeviceUnavailable as exc:
            if exc.reason != "busy":
                raise
            delay = max(BUSY_RETRY_MIN_S, backoff.next_delay())
            if clock() + delay > deadline:
                raise type(exc)(f"{exc} (still busy after {tries} tries in "
                                f"{clock() - started:.1f} s)", "busy") from exc
            if tries == 1:
                log.warning("%s is busy: %s; retry 1 in %.2f s", name, exc, delay)
            else:
                log.warning("%s is still busy; retry %d in %.2f s", name, tries, delay)
            sleep(delay)


# -- what the config names ----------------------------------------------------------------------
# The daemon, `kioskctl selftest` and the benchmarks open devices only through these, so a
# device is opened the same way everywhere.


def configured_modes(table: Any, config: Any) -> tuple[Any, list[dict[str, Any]], str]:
    """(back end, modes to try in order, name for the log) of the source `config` selects in
    `table` (registry.VIDEO_SOURCES or AUDIO_SOURCES)."""
    from . import registry

    section, _, key = table.setting.partition(".")
    name = getattr(getattr(config, section), key)
    backend = registry.resolve(table, name)
    settings = getattr(backend, "settings", None)
    modes = [settings(config)] if settings is not None else [_legacy_settings(table, config)]
    fallbacks = getattr(backend, "fallback_modes", None)
    if fallbacks is not None:
        modes += fallbacks(modes[0])
    elif name in ("picamera2", "v4l2"):
        modes += basic_modes(modes[0])
    return backend, modes, f"{table.setting} {name!r}"


def _legacy_settings(table: Any, config: Any) -> dict[str, Any]:
    # Until every back end reads its own settings (from_config).
    if table.setting == "audio.source":
        audio = config.audio
        return {"frequency": audio.tone_hz} if audio.source == "synthetic" \
            else {"device": audio.capture_device} if audio.source == "alsa" else {}
    video = config.video
    options: dict[str, Any] = {"width": video.width, "height": video.height, "fps": video.fps}
    if video.source == "picamera2":
        options.update(encode=video.encoder, bitrate=video.bitrate_kbps * 1000 or None)
    elif video.source == "v4l2":
        options.update(device=video.device, input_format=video.input_format)
    elif video.source == "file":
        options.update(path=video.file)
    return options


def open_configured(table: Any, config: Any, *, budget_s: float | None = None) -> Opened:
    """Open the source `config` selects in `table`, with the fallbacks above. Blocks: call it
    on a worker thread."""
    backend, modes, name = configured_modes(table, config)
    return open_device(backend, modes, name, budget_s=budget_s)


def configured_speaker(config: Any) -> Any:
    """The audio sink `config` selects (not started). Raises ImportError or UnknownBackend
    when it cannot be had."""
    from . import registry

    audio = config.audio
    backend = registry.resolve(registry.AUDIO_SINKS, audio.sink)
    if hasattr(backend, "from_config"):
        return backend.from_config(config)
    return backend(device=audio.playback_device, buffer_ms=audio.playout_buffer_ms,
                   max_buffer_ms=audio.max_playout_ms)
