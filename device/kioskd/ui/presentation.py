"""What each screen says: its texts and their colours, its buttons and pills, from the View.

Pure: no pygame, no asyncio. `present(name, view, now, wall)` decides what the screen called
`name` (view.screen_for's answer, or view.BLANK) shows at monotonic time `now` and wall-clock
time `wall`; painting.py only lays that out and paints it. The unit tests drive it with plain
values, without SDL.

Readable from two metres: white or saturated colours on black, and nothing on screen that the
person in front of it does not need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import view as v
from .input import ANSWER, CALL, CAMERA_OFF, DECLINE, HANGUP, MUTE_MIC
from .view import View

Colour = tuple[int, int, int]

BACKGROUND: Colour = (0, 0, 0)
FOREGROUND: Colour = (255, 255, 255)
MUTED: Colour = (185, 185, 185)
GREEN: Colour = (16, 150, 56)
RED: Colour = (200, 30, 30)
AMBER: Colour = (255, 176, 0)
PANEL: Colour = (48, 48, 48)

# An incoming call that ended in one of these never became a conversation: it came "from"
# the caller. Every other call was held "with" its peer.
NOT_TALKED = frozenset({"missed", "declined", "refused"})


@dataclass(frozen=True)
class Text:
    text: str
    colour: Colour = FOREGROUND


@dataclass(frozen=True)
class Action:
    """An on-screen button: its label, its colour and the command it gives."""

    label: str
    colour: Colour
    command: str


@dataclass(frozen=True)
class Pill:
    """A small label over a call ("Mic off", "Camera lost"); `name` is its region."""

    name: str
    label: str
    colour: Colour
    text_colour: Colour


@dataclass(frozen=True)
class Avatar:
    """A circle with the initial of `name`; `rings` pulse outwards while somebody is called."""

    name: str
    colour: Colour
    rings: bool


@dataclass(frozen=True)
class Presentation:
    """What one screen shows. `texts` are keyed by the region they are painted in."""

    screen: str
    texts: dict[str, Text] = field(default_factory=dict)
    buttons: tuple[Action, ...] = ()
    pills: tuple[Pill, ...] = ()
    avatar: Avatar | None = None
    status_dot: bool = False  # the top bar's status is the connection's, with a dot
    problem: tuple[str, ...] = ()  # admin screens: paragraphs, wrapped when painted
    problem_lines: int | None = None  # at most this many lines of them
    steps: tuple[str, ...] = ()  # admin screens: what to do


def present(name: str, view: View, now: float, wall: float,
            offline_for: float | None = None) -> Presentation:
    """What the screen `name` shows for `view`. `offline_for`: seconds the server has been
    unreachable (the offline screen says so after a minute)."""
    return _PRESENTERS[name](view, now, wall, offline_for)


def _peer(view: View) -> str:
    return view.peer_name or "Unknown caller"


def _outcome_peer_line(view: View) -> str | None:
    """The line under the outcome's headline: "from Alice" for an incoming call nobody talked
    in, "with Alice" for every other; None when the headline names the peer already."""
    if not view.peer_name or view.peer_name in v.outcome_title(view):
        return None
    outcome = view.last_outcome or "answered"
    came_only = view.direction == "incoming" and outcome in NOT_TALKED
    return f"{'from' if came_only else 'with'} {view.peer_name}"


# -- the screens ------------------------------------------------------------------------------


def _idle(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    local = time.localtime(wall)
    texts = {
        "kiosk_name": Text(view.kiosk_name or "Kiosk"),
        "status": Text("Online", GREEN) if view.online else Text("Connecting...", AMBER),
        "clock": Text(time.strftime("%H:%M", local)),
        "date": Text(time.strftime("%A %d %B", local), MUTED),
    }
    buttons: tuple[Action, ...] = ()
    if view.contact_name:
        buttons = (Action(f"Call {view.contact_name}", GREEN, CALL),)
        texts["hint"] = Text("Touch the button or press C", MUTED)
    else:
        texts["hint"] = Text("Ready for calls", MUTED)
    return Presentation(v.IDLE, texts, buttons, status_dot=True)


def _incoming(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    kind = "video" if view.call_type == "video" else "audio"
    texts = {"caption": Text(f"Incoming {kind} call", MUTED), "peer_name": Text(_peer(view))}
    seconds = v.countdown(view, now)
    if seconds is None:  # manual: the person decides
        buttons: tuple[Action, ...] = (Action("Answer", GREEN, ANSWER),
                                       Action("Decline", RED, DECLINE))
    else:
        texts["countdown"] = Text(f"Answering in {seconds}")
        buttons = (Action("Decline", RED, DECLINE),)
    return Presentation(v.INCOMING, texts, buttons, avatar=Avatar(_peer(view), GREEN, rings=True))


def _outgoing(name: str, caption: str) -> Callable[..., Presentation]:
    def outgoing(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
        texts = {"caption": Text(caption, MUTED)}
        if view.peer_name:
            texts["peer_name"] = Text(view.peer_name)
        return Presentation(name, texts, (Action("Hang up", RED, HANGUP),),
                            avatar=Avatar(_peer(view), PANEL, rings=name == v.CALLING))

    return outgoing


def _pills(view: View) -> tuple[Pill, ...]:
    """Red "Mic off" / "Camera off", then an amber one for each media warning ("No
    microphone", "Camera lost"): the call goes on without it."""
    pills = [Pill(name, label, RED, FOREGROUND) for label, on, name in (
        ("Mic off", view.mic_muted, "mic_off"), ("Camera off", view.camera_off, "camera_off"))
        if on]
    pills += [Pill(f"media_warning_{i}", label, AMBER, BACKGROUND)
              for i, label in enumerate(view.media_warnings)]
    return tuple(pills)


def _call_buttons(view: View, camera: bool) -> tuple[Action, ...]:
    buttons = [Action("Unmute" if view.mic_muted else "Mute",
                      AMBER if view.mic_muted else PANEL, MUTE_MIC)]
    if camera:
        buttons.append(Action("Camera on" if view.camera_off else "Camera off",
                              AMBER if view.camera_off else PANEL, CAMERA_OFF))
    buttons.append(Action("Hang up", RED, HANGUP))
    return tuple(buttons)


def _in_call(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    """The overlays of a video call; "waiting" shows only until the first picture."""
    label = _peer(view)
    if view.connected_since is not None:
        label += "  " + v.format_duration(now - view.connected_since)
    texts = {"waiting": Text(f"Connected to {_peer(view)}"),
             "waiting_hint": Text("Waiting for video...", MUTED),
             "status": Text(label)}
    if view.camera_off:
        texts["pip_label"] = Text("Camera off", MUTED)
    return Presentation(v.IN_CALL, texts, _call_buttons(view, camera=True), _pills(view))


def _audio_call(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    texts = {"caption": Text("Audio call", MUTED), "peer_name": Text(_peer(view))}
    if view.connected_since is not None:
        texts["duration"] = Text(v.format_duration(now - view.connected_since))
    return Presentation(v.AUDIO_CALL, texts, _call_buttons(view, camera=False), _pills(view))


def _outcome(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    outcome = view.last_outcome or "answered"
    colour = {"missed": AMBER, "answered": FOREGROUND, "cancelled": FOREGROUND}.get(outcome, RED)
    texts = {"title": Text(v.outcome_title(view), colour)}
    line = _outcome_peer_line(view)
    if line is not None:
        texts["peer_name"] = Text(line, MUTED)
    return Presentation(v.OUTCOME, texts)


def _admin(name: str, view: View, wall: float, title: Text, problem: list[str],
           steps: list[str], problem_lines: int | None = None) -> Presentation:
    """An admin-facing screen: the kiosk's name and the clock, what is wrong, what to do."""
    texts = {"kiosk_name": Text(view.kiosk_name or "Kiosk"),
             "status": Text(time.strftime("%H:%M", time.localtime(wall)), MUTED),
             "title": title}
    return Presentation(name, texts, problem=tuple(problem), problem_lines=problem_lines,
                        steps=("What to do:", *steps) if steps else ())


def _offline(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    problem = ["Cannot reach the call server."]
    if view.signaling_url:
        problem.append(view.signaling_url)
    if offline_for is not None and offline_for >= 60:
        problem.append(f"Offline for {int(offline_for // 60)} min; retrying.")
    else:
        problem.append("Calls cannot come in. Retrying automatically.")
    steps = ["1. Check the network cable or Wi-Fi of this kiosk.",
             "2. Check that the server is running and signaling.url is right.",
             "3. On the kiosk: kioskctl status; journalctl -u kioskd"]
    return _admin(v.OFFLINE, view, wall, Text("Offline", AMBER), problem, steps)


def _error(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    if view.signaling_status == "unauthorized":
        steps = ["1. Copy this kiosk's token from the server's tokens file.",
                 "2. Put it in the file named by signaling.token_file.",
                 "3. Restart: sudo systemctl restart kioskd"]
        return _admin(v.ERROR, view, wall, Text("Not authorized", RED),
                      ["The call server refused this kiosk's token."], steps)
    return _admin(v.ERROR, view, wall, Text("Needs attention", AMBER),
                  [view.error or "Unknown problem"], ["See: journalctl -u kioskd"],
                  problem_lines=6)


def _blank(view: View, now: float, wall: float, offline_for: float | None) -> Presentation:
    return Presentation(v.BLANK)


_PRESENTERS: dict[str, Callable[[View, float, float, float | None], Presentation]] = {
    v.IDLE: _idle,
    v.INCOMING: _incoming,
    v.CALLING: _outgoing(v.CALLING, "Calling"),
    v.CONNECTING: _outgoing(v.CONNECTING, "Connecting"),
    v.IN_CALL: _in_call,
    v.AUDIO_CALL: _audio_call,
    v.OUTCOME: _outcome,
    v.OFFLINE: _offline,
    v.ERROR: _error,
    v.BLANK: _blank,
}
assert set(_PRESENTERS) == set(v.SCREENS)
