"""The kiosk's state as the screen shows it: a pure function from a snapshot to a `View`.

The status keeper (kioskd/status.py) takes a `Snapshot` whenever something changes and hands
the View to the screen. What an admin must fix ("Camera busy: ... Check video.source.") and
what a call goes without ("No microphone", "Camera lost") are decided here, from the one
problems map (media/problems.py), so the unit tests need neither SDL nor an event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..call.events import Call
from ..config import Config
from ..media.problems import Problem
from .view import View

# The problems map's key for a video call whose peer has no video codec in common with the kiosk
# (media/local.py sets it).
AUDIO_ONLY_KEY = "rtc.video_codecs"
# The local sources, by config key: the name the screen and the log give each.
SOURCE_DEVICES = {"video.source": "camera", "audio.source": "microphone"}
# A device error's reason (media.capture.REASONS, and "lost" mid-call) as the error screen
# says it: "Camera busy: ...".
PROBLEM_WORDS = {"missing": "missing", "busy": "busy", "unsupported": "refused its settings",
                 "denied": "not allowed", "failed": "failed", "lost": "lost"}
UNAUTHORIZED_ERROR = ("The signaling server refused this kiosk's token. Check "
                      "signaling.token_file, then restart kioskd.")


@dataclass(frozen=True)
class LastOutcome:
    outcome: str  # answered, missed, declined, ...
    peer_name: str
    direction: str  # incoming, outgoing
    at: float  # time.monotonic()


@dataclass(frozen=True)
class Snapshot:
    """Everything the screen's View is made of, as the kiosk knows it at `now`."""

    state: str
    call: Call | None
    signaling_status: str
    now: float  # time.monotonic()
    wall: float  # time.time(), for the connected call's duration
    problems: Mapping[str, Problem] = field(default_factory=dict)
    reconnecting: bool = False  # the call's media path is lost; the grace runs
    mic_muted: bool = False
    camera_off: bool = False
    last_outcome: LastOutcome | None = None  # shown while idle for a few seconds
    ringing_since: float = 0.0  # time.monotonic()


def admin_error(signaling_status: str, problems: Mapping[str, Problem]) -> str | None:
    """What an admin must fix, as the error screen says it (None: nothing)."""
    if signaling_status == "unauthorized":
        return UNAUTHORIZED_ERROR
    for key, device in SOURCE_DEVICES.items():
        problem = problems.get(key)
        if problem is None or not problem.is_error:
            continue
        if problem.reason == "lost":  # the text already says "camera lost mid-call: ..."
            return f"{problem.text[0].upper()}{problem.text[1:]}. Check {key} and the cable."
        cable = " and the cable" if problem.reason in ("missing", "failed") else ""
        words = PROBLEM_WORDS.get(problem.reason, problem.reason)
        return f"{device.capitalize()} {words}: {problem.text}. Check {key}{cable}."
    return None


def media_warnings(call_type: str, problems: Mapping[str, Problem]) -> tuple[str, ...]:
    """Short words for the in-call screen: what this call goes without, or makes do with."""
    keys = ["video.source", "audio.source"] if call_type == "video" else ["audio.source"]
    warnings = []
    for key in keys:
        device, problem = SOURCE_DEVICES[key], problems.get(key)
        if problem is None:
            continue
        if not problem.is_error:
            warnings.append(f"Basic {device} settings")
        elif problem.reason in ("busy", "lost"):
            warnings.append(f"{device.capitalize()} {problem.reason}")
        else:
            warnings.append(f"No {device}")
    if call_type == "video" and problems.get(AUDIO_ONLY_KEY) is not None:
        warnings.append("Audio only: no video codec in common")
    return tuple(warnings)


def build_view(snapshot: Snapshot, config: Config) -> View:
    s, call = snapshot, snapshot.call
    outcome = s.last_outcome if s.state == "idle" else None
    delay = config.answer.delay_s if config.answer.mode != "manual" else 0.0
    ringing = s.state == "ringing"
    return View(
        state=s.state,
        kiosk_name=config.kiosk.name,
        online=s.signaling_status == "online",
        signaling_status=s.signaling_status,
        signaling_url=config.signaling.url,
        peer_name=(call.peer_name or str(call.peer)) if call else
        (outcome.peer_name if outcome else ""),
        call_type=call.call_type if call else "video",
        direction=call.direction if call else (outcome.direction if outcome else "incoming"),
        answer_mode=config.answer.mode,
        auto_answer_at=s.ringing_since + delay if ringing and delay else None,
        connected_since=None if call is None or call.connected_at is None
        else s.now - (s.wall - call.connected_at),
        mic_muted=s.mic_muted,
        camera_off=s.camera_off,
        last_outcome=outcome.outcome if outcome else None,
        last_outcome_at=outcome.at if outcome else None,
        error=admin_error(s.signaling_status, s.problems),
        contact_name=config.call.contact,
        media_warnings=(("Reconnecting...",) if s.reconnecting and call else ())
        + (media_warnings(call.call_type, s.problems) if call else ()),
    )
