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


def test_status_says_why_the_kiosk_is_offline(capsys):
    print_status({"kiosk": "Lobby", "state": "idle", "signaling": "unauthorized",
                  "signaling_error": "the server refused this kiosk's token (unauthorized): "
                                     "check signaling.token_file", "reconnects": 0})
    out = capsys.readouterr().out
    assert "signaling unauthorized" in out
    assert "not online: the server refused this kiosk's token" in out
