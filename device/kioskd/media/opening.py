"""Opening a call's camera or microphone, with the fallbacks the web app has.

`open_device` runs on a worker thread (opening a device is blocking I/O) and handles the two
set-up fallbacks whose cure is to try again:

- busy (another program has the device): retry with backoff (full jitter, capped) for at
  most BUSY_RETRY_S, then give up: the call goes on without the device. The kiosk would
  rather answer without its camera than keep a caller waiting.
- unsupported (the camera refused the configured mode): try the modes its back end offers
  instead (`fallback_modes`): the basic settings, the ones the web app asks of an iPhone's
  camera (PROTOCOL.md: 640x480@24, BASIC_VIDEO), and for a V4L2 camera also in its other
  input format.

A missing or forbidden device is not retried: waiting will not plug it in.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..policy.backoff import Backoff
from . import registry
from .capture import DeviceUnavailable

log = logging.getLogger(__name__)

# How long a call's set-up keeps retrying a busy device, in total (seconds).
BUSY_RETRY_S = 2.5
BUSY_RETRY_BASE_S = 0.2  # the first retry within this; each later one within twice as long
BUSY_RETRY_CAP_S = 1.0  # ... but never more than this apart
BUSY_RETRY_MIN_S = 0.05  # full jitter can draw 0: never retry in a tight loop

BASIC_VIDEO = {"width": 640, "height": 480, "fps": 24}


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


def _shared(backend: Any, echo_reference: Any) -> dict[str, Any]:
    """The kiosk's shared objects a back end takes besides its settings."""
    if echo_reference is not None and getattr(backend, "takes_echo_reference", False):
        return {"echo_reference": echo_reference}
    return {}


def configured_modes(table: Any, config: Any, echo_reference: Any = None,
                     peer_codecs: Sequence[str] | None = None
                     ) -> tuple[Any, list[dict[str, Any]], str]:
    """(back end, modes to try in order, name for the log) of the source `config` selects in
    `table` (registry.VIDEO_SOURCES or AUDIO_SOURCES): the back end's own settings, then its
    `fallback_modes` if it has other modes (real cameras do). `echo_reference` goes to a
    back end that takes it (the ALSA microphone). `peer_codecs` (the video codecs the call's
    peer takes, when known) go to a back end whose settings depend on them (`for_peer`: the
    picamera2 hardware encoder makes only H.264)."""
    name = registry.configured_name(table, config)
    backend = registry.resolve(table, name)
    settings = {**backend.settings(config), **_shared(backend, echo_reference)}
    for_peer = getattr(backend, "for_peer", None)
    if peer_codecs is not None and for_peer is not None:
        settings = for_peer(settings, peer_codecs)
    fallbacks = getattr(backend, "fallback_modes", None)
    modes = [settings, *(fallbacks(settings) if fallbacks is not None else ())]
    return backend, modes, f"{table.setting} {name!r}"


def open_configured(table: Any, config: Any, *, budget_s: float | None = None,
                    echo_reference: Any = None,
                    peer_codecs: Sequence[str] | None = None) -> Opened:
    """Open the source `config` selects in `table`, with the fallbacks above. Blocks: call it
    on a worker thread."""
    backend, modes, name = configured_modes(table, config, echo_reference, peer_codecs)
    return open_device(backend, modes, name, budget_s=budget_s)


def configured_speaker(config: Any, echo_reference: Any = None) -> Any:
    """The audio sink `config` selects (not started); `echo_reference` goes to a sink that
    takes it (the ALSA speaker). Raises ImportError or UnknownBackend when it cannot be had."""
    table = registry.AUDIO_SINKS
    backend = registry.resolve(table, registry.configured_name(table, config))
    return backend.from_config(config, **_shared(backend, echo_reference))
