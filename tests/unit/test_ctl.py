"""kioskctl's arguments and printing, without a daemon."""

from __future__ import annotations

import pytest

from kioskd.cli import _ctl_parser, ctl_main
from kioskd.ctl import print_calls, print_status


def test_missed_calls_without_any_say_so(capsys):
    print_calls([], missed=True)
    assert capsys.readouterr().out.strip() == "no missed calls"
    print_calls([])
    assert capsys.readouterr().out.strip() == "no calls yet"


@pytest.mark.parametrize("argv", [
    ["--json", "--config", "a.toml", "--set", "x.y=1", "status"],
    ["status", "--json", "--config", "a.toml", "--set", "x.y=1"],
    ["--set", "x.y=1", "status", "--config", "a.toml", "--json"],
])
def test_common_options_go_before_or_after_the_subcommand(argv):
    args = _ctl_parser().parse_args(argv)
    assert args.command == "status"
    assert (getattr(args, "config_sub", None) or args.config) == "a.toml"
    assert [*args.overrides, *getattr(args, "overrides_sub", [])] == ["x.y=1"]
    assert args.json or getattr(args, "json_sub", False)


def test_set_options_on_both_sides_all_count(tmp_path, capsys):
    code = ctl_main(["--set", "kiosk.name=Front door", "config", "show", "--json",
                     "--set", "video.fps=12"])
    shown = capsys.readouterr().out
    assert code == 0 and '"name": "Front door"' in shown and '"fps": 12' in shown


def test_config_check_takes_the_file_after_the_subcommand(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[video]\nfps = 0\n")
    assert ctl_main(["config", "check", "--config", str(bad)]) == 1
    assert "video.fps" in capsys.readouterr().err


def test_status_shows_the_microphones_processing(capsys):
    status = {"kiosk": "Lobby", "state": "connected", "signaling": "online", "reconnects": 0,
              "audio_processing": {
                  "state": "processing", "echo_cancellation": True,
                  "echo_cancellation_active": True, "erle_db": 31.5, "delay_hint_ms": 20,
                  "noise_suppression": True, "high_pass_filter": True, "auto_gain": True,
                  "auto_gain_db": 6.0}}
    print_status(status)
    assert ("  microphone: echo cancellation active (ERLE 31.5 dB (estimated), delay hint "
            "20 ms), noise suppression, high-pass filter, auto gain (+6.0 dB)\n"
            ) in capsys.readouterr().out
    status["audio_processing"] = {"state": "pass-through", "error": None}
    print_status(status)
    assert "microphone: unprocessed (pywebrtc-audio is not installed)" in capsys.readouterr().out


def test_status_says_when_and_why_video_is_shed(capsys):
    status = {"kiosk": "Lobby", "state": "connected", "signaling": "online", "reconnects": 0,
              "video_shedding": {"level": 0, "enabled": True, "why": "", "cpu": 0.2,
                                 "cpu_budget": None, "throttled": 0.0, "loop_lag_ms": 2}}
    print_status(status)
    assert "video: shed" not in capsys.readouterr().out  # nothing to say at full video
    status["video_shedding"].update(
        level=2, why="the CPU quota (35% of a core) throttled the kiosk in 60% of its periods")
    print_status(status)
    assert ("  video: shed to level 2 of 3 (less video, the sound kept): the CPU quota (35% of "
            "a core) throttled the kiosk in 60% of its periods\n") in capsys.readouterr().out


def test_status_says_why_the_kiosk_is_offline(capsys):
    print_status({"kiosk": "Lobby", "state": "idle", "signaling": "unauthorized",
                  "signaling_error": "the server refused this kiosk's token (unauthorized): "
                                     "check signaling.token_file", "reconnects": 0})
    out = capsys.readouterr().out
    assert "signaling unauthorized" in out
    assert "not online: the server refused this kiosk's token" in out
