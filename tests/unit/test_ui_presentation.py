"""What each screen says (ui/presentation.py): pure, driven with plain Views and times, no SDL.

This module must not import pygame, and neither may the one it tests.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kioskd.ui import view as v
from kioskd.ui.presentation import AMBER, FOREGROUND, GREEN, RED, present
from kioskd.ui.view import View

NOW = 100.0
WALL = 1_700_000_000.0  # any wall-clock time
ONLINE = {"kiosk_name": "Lobby kiosk", "online": True, "signaling_status": "online"}


def texts(name, view, now=NOW, **kwargs):
    return {region: text.text for region, text in present(name, view, now, WALL,
                                                           **kwargs).texts.items()}


def commands(name, view, now=NOW):
    return [button.command for button in present(name, view, now, WALL).buttons]


# -- the outcome of a call --------------------------------------------------------------------


def ended(outcome, direction="incoming", peer="Visitor"):
    return View(last_outcome=outcome, last_outcome_at=NOW, direction=direction, peer_name=peer,
                **ONLINE)


def test_an_answered_incoming_call_ended_with_the_caller():
    shown = texts(v.OUTCOME, ended("answered"))
    assert shown == {"title": "Call ended", "peer_name": "with Visitor"}


@pytest.mark.parametrize("outcome", ["missed", "declined", "refused"])
def test_an_incoming_call_nobody_talked_in_came_from_the_caller(outcome):
    assert texts(v.OUTCOME, ended(outcome))["peer_name"] == "from Visitor"


@pytest.mark.parametrize(("outcome", "direction"), [
    ("answered", "outgoing"), ("declined", "outgoing"), ("timed out", "outgoing"),
    ("failed", "incoming"), ("cancelled", "incoming"), (None, "incoming")])
def test_every_other_call_was_with_its_peer(outcome, direction):
    assert texts(v.OUTCOME, ended(outcome, direction))["peer_name"] == "with Visitor"


def test_a_call_still_ending_was_with_its_peer():
    view = View(state="ending", peer_name="Visitor", direction="incoming")
    assert texts(v.OUTCOME, view) == {"title": "Call ended", "peer_name": "with Visitor"}


def test_a_headline_that_names_the_peer_has_no_second_line():
    assert texts(v.OUTCOME, ended("busy", "outgoing", "Reception")) == {
        "title": "Reception is busy"}
    assert "peer_name" not in texts(v.OUTCOME, ended("missed", peer=""))


def test_outcome_colours():
    colour = {outcome: present(v.OUTCOME, ended(outcome), NOW, WALL).texts["title"].colour
              for outcome in ("missed", "answered", "cancelled", "failed", "declined")}
    assert colour == {"missed": AMBER, "answered": FOREGROUND, "cancelled": FOREGROUND,
                      "failed": RED, "declined": RED}


# -- the other screens ------------------------------------------------------------------------


def test_idle_has_a_call_button_only_with_a_contact():
    with_contact = present(v.IDLE, View(contact_name="Reception", **ONLINE), NOW, WALL)
    assert [(b.label, b.command) for b in with_contact.buttons] == [("Call Reception", "call")]
    assert with_contact.texts["hint"].text == "Touch the button or press C"
    assert with_contact.texts["status"].text == "Online" and with_contact.status_dot
    without = present(v.IDLE, View(kiosk_name="k"), NOW, WALL)
    assert without.buttons == () and without.texts["hint"].text == "Ready for calls"
    assert (without.texts["status"].text, without.texts["status"].colour) == (
        "Connecting...", AMBER)


def test_idle_shows_the_wall_clock():
    import time

    shown = texts(v.IDLE, View(**ONLINE))
    assert shown["clock"] == time.strftime("%H:%M", time.localtime(WALL))


def test_incoming_manual_versus_auto_answer():
    manual = View(state="ringing", peer_name="Alice", **ONLINE)
    assert commands(v.INCOMING, manual) == ["answer", "decline"]
    assert "countdown" not in texts(v.INCOMING, manual)
    auto = View(state="ringing", peer_name="Alice", auto_answer_at=NOW + 2.5, **ONLINE)
    assert commands(v.INCOMING, auto) == ["decline"]
    assert texts(v.INCOMING, auto)["countdown"] == "Answering in 3"
    assert texts(v.INCOMING, View(state="ringing", call_type="audio"))["caption"] == (
        "Incoming audio call")
    avatar = present(v.INCOMING, manual, NOW, WALL).avatar
    assert (avatar.name, avatar.colour, avatar.rings) == ("Alice", GREEN, True)


def test_calling_rings_and_connecting_does_not():
    view = View(state="calling", peer_name="Reception", direction="outgoing")
    assert present(v.CALLING, view, NOW, WALL).avatar.rings
    assert not present(v.CONNECTING, view, NOW, WALL).avatar.rings
    assert commands(v.CALLING, view) == ["hangup"]
    assert "peer_name" not in texts(v.CONNECTING, View(state="connecting"))


def test_in_call_buttons_and_pills_follow_mute_and_warnings():
    view = View(state="connected", peer_name="Alice", connected_since=NOW - 75,
                mic_muted=True, camera_off=True, media_warnings=("No microphone",))
    shown = present(v.IN_CALL, view, NOW, WALL)
    assert [(b.label, b.colour) for b in shown.buttons] == [
        ("Unmute", AMBER), ("Camera on", AMBER), ("Hang up", RED)]
    assert [(p.name, p.label, p.colour) for p in shown.pills] == [
        ("mic_off", "Mic off", RED), ("camera_off", "Camera off", RED),
        ("media_warning_0", "No microphone", AMBER)]
    assert shown.texts["status"].text == "Alice  1:15"
    assert shown.texts["pip_label"].text == "Camera off"
    plain = present(v.IN_CALL, View(state="connected"), NOW, WALL)
    assert [b.label for b in plain.buttons] == ["Mute", "Camera off", "Hang up"]
    assert plain.pills == () and "pip_label" not in plain.texts


def test_an_audio_call_has_no_camera_button():
    view = View(state="connected", call_type="audio", peer_name="Alice", connected_since=NOW)
    assert commands(v.AUDIO_CALL, view) == ["mute_mic", "hangup"]
    assert texts(v.AUDIO_CALL, view)["duration"] == "0:00"


def test_offline_says_for_how_long_after_a_minute():
    view = View(kiosk_name="k", signaling_url="https://calls.example.org")
    soon = present(v.OFFLINE, view, NOW, WALL, offline_for=30)
    assert soon.problem == ("Cannot reach the call server.", "https://calls.example.org",
                            "Calls cannot come in. Retrying automatically.")
    assert soon.steps[0] == "What to do:" and soon.problem_lines is None
    later = present(v.OFFLINE, view, NOW, WALL, offline_for=130)
    assert later.problem[-1] == "Offline for 2 min; retrying."
    assert (later.texts["title"].text, later.texts["title"].colour) == ("Offline", AMBER)


def test_errors_say_what_to_do():
    refused = present(v.ERROR, View(signaling_status="unauthorized"), NOW, WALL)
    assert (refused.texts["title"].text, refused.texts["title"].colour) == (
        "Not authorized", RED)
    assert refused.steps[-1] == "3. Restart: sudo systemctl restart kioskd"
    broken = present(v.ERROR, View(error="camera missing"), NOW, WALL)
    assert broken.texts["title"].text == "Needs attention"
    assert broken.problem == ("camera missing",) and broken.problem_lines == 6
    assert broken.steps == ("What to do:", "See: journalctl -u kioskd")


def test_every_screen_has_a_presentation():
    for name in v.SCREENS:
        assert present(name, View(), NOW, WALL).screen == name


def test_presentation_needs_no_pygame():
    code = ("import sys, kioskd.ui.presentation, tests.unit.test_ui_presentation; "
            "print('pygame' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"
