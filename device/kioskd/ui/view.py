"""What the screen shows: a frozen `View` the app hands to the UI, and which screen it means.

Pure: no pygame, no asyncio. The app builds a new View whenever something it knows changes
(call state, signaling status, mute) and passes it to `KioskScreen.update`; the render thread
picks the screen with `screen_for`, which the unit tests drive with plain values.

Times are `time.monotonic()` seconds, so a wall-clock step (NTP at boot) cannot make a
countdown jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Screen names, in the order the docs list them.
IDLE = "idle"
INCOMING = "incoming"
CALLING = "calling"
CONNECTING = "connecting"
IN_CALL = "in_call"  # video: the caller's picture on the whole screen
AUDIO_CALL = "audio_call"
OUTCOME = "outcome"  # ended, missed, declined, busy, ... for a few seconds, then idle
OFFLINE = "offline"
ERROR = "error"
BLANK = "blank"  # the display sleeps
SCREENS = (IDLE, INCOMING, CALLING, CONNECTING, IN_CALL, AUDIO_CALL, OUTCOME, OFFLINE, ERROR,
           BLANK)

OUTCOME_SHOW_S = 4.0  # how long "missed", "declined", ... stay up before idle returns
OFFLINE_GRACE_S = 10.0  # a short reconnect shows a note on the idle screen, not a full screen

# The last outcome as a headline; "{peer}" is the peer's name (or "the caller").
OUTCOME_TITLES = {
    "answered": "Call ended",
    "missed": "Missed call",
    "declined": "Call declined",
    "busy": "{peer} is busy",
    "refused": "Call refused",
    "timed out": "No answer",
    "failed": "Call failed",
    "cancelled": "Call cancelled",
}


def _text_value(value: Any) -> str:
    """A str Enum (like call.states.State) or a plain string, as the plain string."""
    return str(getattr(value, "value", value))


@dataclass(frozen=True)
class View:
    """Everything the screen needs to know, as plain values.

    `state` is a call state value (idle, ringing, calling, connecting, connected, recovering,
    ending; a `State` member is accepted). `peer_name` is the current call's peer, or the last
    call's while its outcome is shown. `error` is an admin-facing problem and what to do about it,
    e.g. "camera missing: /dev/video0 not found. Connect the camera and restart kioskd".
    """

    state: str = "idle"
    kiosk_name: str = ""
    online: bool = False
    signaling_status: str = "offline"  # online, offline, unauthorized, connecting
    signaling_url: str = ""  # shown on the offline screen so an admin can check it
    peer_name: str = ""
    call_type: str = "video"  # video, audio
    direction: str = "incoming"  # incoming, outgoing
    answer_mode: str = "always"  # always, allowlist, manual
    auto_answer_at: float | None = None  # when a ringing call will be answered by itself
    connected_since: float | None = None
    mic_muted: bool = False
    camera_off: bool = False
    audio_level_dbfs: float | None = None  # the caller's level, for audio-only calls
    last_outcome: str | None = None  # answered, missed, declined, busy, ...
    last_outcome_at: float | None = None
    error: str | None = None
    contact_name: str = ""  # who the "call" button calls; empty: no call button
    # In a call: what it goes without or makes do with, e.g. ("No microphone", "Camera lost")
    media_warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", _text_value(self.state))

    @property
    def ringing(self) -> bool:
        return self.state == "ringing"


def screen_for(view: View, now: float, offline_since: float | None = None) -> str:
    """The name of the screen that shows `view` at monotonic time `now`.

    A call in progress always wins; an idle kiosk shows, in this order, a fresh outcome, a
    refused token, an error, a connection lost for longer than OFFLINE_GRACE_S (counted from
    `offline_since`; None: lost for an unknown time, so at once), else the idle screen.
    """
    state = view.state
    if state == "ringing":
        return INCOMING
    if state == "calling":
        return CALLING
    if state == "connecting":
        return CONNECTING
    if state in ("connected", "recovering"):  # recovering: still the call, "Reconnecting..."
        return IN_CALL if view.call_type == "video" else AUDIO_CALL
    if state == "ending":
        return OUTCOME
    if view.last_outcome and view.last_outcome_at is not None \
            and 0 <= now - view.last_outcome_at < OUTCOME_SHOW_S:
        return OUTCOME
    if view.signaling_status == "unauthorized":
        return ERROR
    if view.error:
        return ERROR
    if not view.online:
        if offline_since is None or now - offline_since >= OFFLINE_GRACE_S:
            return OFFLINE
    return IDLE


def outcome_title(view: View) -> str:
    """The outcome screen's headline, e.g. "Missed call" or "Alice is busy"."""
    if view.state == "ending" and not view.last_outcome:
        return "Call ended"
    title = OUTCOME_TITLES.get(view.last_outcome or "", "Call ended")
    return title.format(peer=view.peer_name or "The other side")


def format_duration(seconds: float) -> str:
    """m:ss below an hour, h:mm:ss above; negative (clock skew) reads as 0:00."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def countdown(view: View, now: float) -> int | None:
    """Whole seconds (rounded up) until a ringing call is answered by itself, or None."""
    if view.auto_answer_at is None:
        return None
    return max(0, math.ceil(view.auto_answer_at - now))


LEVEL_FLOOR_DBFS = -60.0  # the meter's empty end


def level_fraction(dbfs: float | None) -> float:
    """0..1 for the audio meter: LEVEL_FLOOR_DBFS and below is empty, 0 dBFS full."""
    if dbfs is None or math.isnan(dbfs):
        return 0.0
    return min(1.0, max(0.0, (dbfs - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS))
