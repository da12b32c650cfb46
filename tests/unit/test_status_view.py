"""What the screen is told, as a pure function of the kiosk's snapshot."""

from __future__ import annotations

from kioskd.call.events import Call
from kioskd.config import load_config
from kioskd.media.problems import FALLBACK, Problem, Problems
from kioskd.ui.status_view import LastOutcome, Snapshot, admin_error, build_view, media_warnings

CONFIG = load_config(None, ["kiosk.name=Lobby", "call.contact=reception"])


def snapshot(**fields) -> Snapshot:
    return Snapshot(**{"state": "idle", "call": None, "signaling_status": "online", "now": 100.0,
                       "wall": 1000.0, **fields})


def test_an_idle_kiosk_shows_the_last_outcome_with_its_direction():
    outcome = LastOutcome("answered", "Visitor", "outgoing", 99.0)
    view = build_view(snapshot(last_outcome=outcome), CONFIG)
    assert (view.last_outcome, view.peer_name, view.direction) == ("answered", "Visitor",
                                                                   "outgoing")
    assert view.kiosk_name == "Lobby" and view.contact_name == "reception" and view.online


def test_a_connected_call_counts_from_its_connect_time():
    call = Call("c1", "alice", "incoming", peer_name="Alice", connected_at=990.0)
    view = build_view(snapshot(state="connected", call=call), CONFIG)
    assert view.peer_name == "Alice" and view.connected_since == 90.0


def test_a_lost_media_path_says_reconnecting_first():
    call = Call("c1", "alice", "incoming", connected_at=990.0)
    problems = {"audio.source": Problem("lost", "microphone lost mid-call: gone")}
    view = build_view(snapshot(state="connected", call=call, reconnecting=True,
                               problems=problems), CONFIG)
    assert view.media_warnings == ("Reconnecting...", "Microphone lost")
    assert build_view(snapshot(reconnecting=True), CONFIG).media_warnings == ()  # idle


def test_problems_become_an_admin_error_and_in_call_warnings():
    problems = {"video.source": Problem("busy", "camera 0 is busy"),
                "audio.source": Problem(FALLBACK, "refused 48 kHz; using the basics")}
    assert admin_error("online", problems) == (
        "Camera busy: camera 0 is busy. Check video.source.")
    assert media_warnings("video", problems) == ("Camera busy", "Basic microphone settings")
    assert media_warnings("audio", problems) == ("Basic microphone settings",)
    lost = {"audio.source": Problem("lost", "microphone lost mid-call: No such device")}
    assert admin_error("online", lost) == (
        "Microphone lost mid-call: No such device. Check audio.source and the cable.")
    assert admin_error("unauthorized", {}).startswith("The signaling server refused")
    assert admin_error("online", {"display.mode": Problem("failed", "no display")}) is None


def test_the_problems_map_reports_only_news():
    changes = []
    problems = Problems(on_change=lambda: changes.append(1))
    problems.set("video.source", "busy", "camera busy")
    problems.set("video.source", "busy", "camera busy")
    problems.set("video.source", FALLBACK, "basic settings")
    problems.clear("video.source")
    problems.clear("video.source")
    assert len(changes) == 3
    problems.set("audio.sink", "failed", "no speaker")
    problems.set("video.source", FALLBACK, "basic settings")
    assert problems.errors() == {"audio.sink": "no speaker"}
    assert problems.notices() == {"video.source": "basic settings"}
