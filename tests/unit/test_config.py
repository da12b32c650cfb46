"""Configuration: layering, --set, validation messages, token reading. Pure: files in tmp_path."""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from kioskd.config import (
    Config,
    ConfigError,
    ConfigIssue,
    IceServer,
    check_config_file,
    config_as_dict,
    load_config,
    read_token,
)
from kioskd.cli import ctl_main
from kioskd.config import schema
from kioskd.media import registry

from tests.conftest import _forget_picamera2

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "kioskd.toml"
DOCS = ROOT / "docs" / "configuration.md"


# What every load gives on a machine that is not a Raspberry Pi: the shipped defaults with the
# desktop profile's video settings (media.profile = "auto").
DESKTOP = dataclasses.replace(
    Config(),
    video=dataclasses.replace(Config().video, width=1280, height=720, fps=30),
    rtc=dataclasses.replace(Config().rtc, video_codecs=("VP8", "H264")),
)


@pytest.fixture(autouse=True)
def not_a_pi(monkeypatch):
    """The same results on a Pi and elsewhere: the board is read as 'not a Pi'."""
    monkeypatch.setattr("kioskd.config.loader.read_board_model", lambda *a: "")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[ConfigIssue]:
    return list(excinfo.value.issues)


def only_issue(excinfo: pytest.ExceptionInfo[ConfigError]) -> ConfigIssue:
    issues = issues_of(excinfo)
    assert len(issues) == 1, issues
    return issues[0]


# -- defaults ---------------------------------------------------------------------------------


def test_defaults_load():
    config = load_config(env={})
    assert config == DESKTOP
    assert config.path is None
    assert config.kiosk.name == "Kiosk"
    assert config.signaling.url == "http://127.0.0.1:8080"
    assert config.signaling.token_file == ""
    assert config.signaling.verify_tls is True
    assert config.signaling.connect_timeout_s == 10.0
    assert config.answer.mode == "always" and config.answer.allow == ()
    assert config.answer.delay_s == 0.0
    assert (config.call.ring_timeout_s, config.call.connect_timeout_s,
            config.call.disconnect_grace_s, config.call.contact) == (30.0, 15.0, 3.0, "")
    assert (config.video.source, config.video.width, config.video.height,
            config.video.fps) == ("synthetic", 1280, 720, 30)  # the desktop profile
    assert (config.audio.source, config.audio.sink, config.audio.tone_hz) == (
        "synthetic", "null", 440.0)
    assert config.display.mode == "none"
    assert config.rtc.ice_servers == ()
    assert config.rtc.video_codecs == ("VP8", "H264")
    assert config.control.socket == ""
    assert config.log.level == "info"


def test_packaged_defaults_file_matches_schema():
    text = resources.files("kioskd.config").joinpath("defaults.toml").read_text("utf-8")
    assert tomllib.loads(text) == schema.defaults_dict()


def test_floats_are_floats_and_ints_are_ints():
    config = load_config(env={})
    for info in schema.all_keys():
        value = getattr(getattr(config, info.section), info.name)
        if isinstance(info.kind, schema.Number):
            assert type(value) is float, info.dotted
        if isinstance(info.kind, schema.Integer):
            assert type(value) is int, info.dotted


def _uncommented_example() -> str:
    """The example with its commented-out settings (`#key = value`) switched on."""
    return re.sub(r"(?m)^#(?=[a-z_]+ = )", "", EXAMPLE.read_text(encoding="utf-8"))


def test_shipped_example_loads_and_equals_defaults(tmp_path):
    assert load_config(EXAMPLE, env={}) == DESKTOP
    # Uncommented, the example sets every key explicitly, so no profile applies.
    switched_on = write(tmp_path / "kioskd.toml", _uncommented_example())
    assert load_config(switched_on, env={}) == Config()


def test_shipped_example_shows_every_key():
    data = tomllib.loads(_uncommented_example())
    shown = {f"{s}.{k}" for s, table in data.items() for k in table}
    assert shown == {info.dotted for info in schema.all_keys()}
    assert data == schema.defaults_dict()


def test_docs_mention_every_key():
    text = DOCS.read_text(encoding="utf-8")
    for info in schema.all_keys():
        assert f"`{info.name}`" in text and f"[{info.section}]" in text, info.dotted
    assert "--set" in text


def test_adding_a_key_is_one_declaration():
    # The schema's metadata drives defaults, validation and docs.
    info = schema.find_key("video.fps")
    assert info is not None and info.default == 24
    assert "from 1 to 60" in info.kind.describe()
    assert "| `fps` | `24` |" in schema.reference()


# -- layering ---------------------------------------------------------------------------------


def test_dropins_in_name_order_then_main_file(tmp_path):
    main = write(tmp_path / "kioskd.toml", "[video]\nfps = 15\n")
    write(tmp_path / "kioskd.conf.d" / "20-late.toml",
          '[video]\nwidth = 1280\nfps = 30\n[kiosk]\nname = "Late"\n')
    write(tmp_path / "kioskd.conf.d" / "10-early.toml",
          '[video]\nwidth = 800\nheight = 600\n[kiosk]\nname = "Early"\n[log]\nlevel = "debug"\n')
    write(tmp_path / "kioskd.conf.d" / "notes.txt", "not toml [")
    write(tmp_path / "kioskd.conf.d" / ".hidden.toml", "broken [")
    config = load_config(main, env={})
    assert config.video.fps == 15  # the main file wins over drop-ins
    assert config.video.width == 1280  # the later drop-in wins over the earlier one
    assert config.video.height == 600
    assert config.kiosk.name == "Late"
    assert config.log.level == "debug"
    assert config.path == main


def test_set_wins_over_everything_and_later_set_wins(tmp_path):
    main = write(tmp_path / "kioskd.toml", "[video]\nfps = 15\n")
    config = load_config(main, ["video.fps=20", "video.fps=25"], env={})
    assert config.video.fps == 25


def test_arrays_are_replaced_not_appended(tmp_path):
    main = write(tmp_path / "kioskd.toml", '[answer]\nallow = ["b"]\n')
    write(tmp_path / "kioskd.conf.d" / "a.toml", '[answer]\nallow = ["a"]\n')
    assert load_config(main, env={}).answer.allow == ("b",)


def test_missing_main_file_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as excinfo:
        load_config(missing, env={})
    issue = only_issue(excinfo)
    assert issue.source == str(missing)
    assert "not found" in issue.message
    assert str(excinfo.value).startswith(f"{missing}: ")


# -- --set ------------------------------------------------------------------------------------


def test_set_parses_toml_values_else_plain_strings():
    config = load_config(None, [
        "answer.delay_s=2",
        'answer.allow=["a","b", 7]',
        "video.fps=24",
        "signaling.url=http://10.0.0.2:8080",
        "signaling.verify_tls=false",
        'kiosk.name="Front door"',
        "call.contact=42",
        "audio.tone_hz=1000.5",
        "answer.mode=manual",
        'rtc.ice_servers=[{urls="stun:stun.example.org:3478"}]',
        "control.socket=",
    ], env={})
    assert config.answer.delay_s == 2.0 and isinstance(config.answer.delay_s, float)
    assert config.answer.allow == ("a", "b", "7")
    assert config.video.fps == 24
    assert config.signaling.url == "http://10.0.0.2:8080"
    assert config.signaling.verify_tls is False
    assert config.kiosk.name == "Front door"
    assert config.call.contact == "42"
    assert config.audio.tone_hz == 1000.5
    assert config.answer.mode == "manual"
    assert config.rtc.ice_servers == (IceServer(("stun:stun.example.org:3478",)),)
    assert config.control.socket == ""


def test_set_keeps_text_for_string_keys(monkeypatch):
    # A video source named "true" (as a test may register one): still text, not a boolean.
    monkeypatch.setitem(registry.VIDEO_SOURCES, "true", "kioskd.media.synthetic:SyntheticCamera")
    config = load_config(None, ["kiosk.name=123", "video.source=true"], env={})
    assert config.kiosk.name == "123"
    assert config.video.source == "true"


def test_set_unknown_key():
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, ["video.fsp=24"], env={})
    issue = only_issue(excinfo)
    assert issue.source == "--set"
    assert issue.key == "video.fsp"
    assert "unknown key video.fsp" in issue.message
    assert "did you mean fps?" in issue.message
    assert "known keys in [video]: source, width, height, fps, encoder, bitrate_kbps, encoder_speed, device, input_format, file" in issue.message


def test_set_without_equals_or_section():
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, ["video.fps", "fps=24", "=3"], env={})
    first, second, third = issues_of(excinfo)
    assert first == ConfigIssue("--set", "video.fps",
                                "expected KEY=VALUE, e.g. --set video.fps=24")
    assert second.key == "fps" and "--set video.fps=24" in second.message
    assert third.source == "--set" and "KEY=VALUE" in third.message


def test_set_bad_value_names_set_as_source(tmp_path):
    main = write(tmp_path / "kioskd.toml", "[video]\nfps = 15\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, ["video.fps=abc"], env={})
    issue = only_issue(excinfo)
    assert (issue.source, issue.key) == ("--set", "video.fps")
    assert '"abc" is a string' in issue.message


# -- validation messages ----------------------------------------------------------------------


def test_bad_choice_names_file_key_and_allowed_values(tmp_path):
    main = write(tmp_path / "kioskd.toml", '[answer]\nmode = "sometimes"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    issue = only_issue(excinfo)
    assert issue == ConfigIssue(
        str(main), "answer.mode",
        '"sometimes" is not allowed; use one of "always", "allowlist", "manual"')
    assert str(excinfo.value) == (
        f'{main}: answer.mode: "sometimes" is not allowed; '
        'use one of "always", "allowlist", "manual"')


def test_choices_are_case_insensitive():
    config = load_config(None, ["answer.mode=Manual", "log.level=DEBUG", "display.mode=Window"],
                         env={})
    assert (config.answer.mode, config.log.level, config.display.mode) == (
        "manual", "debug", "window")


def test_several_errors_reported_at_once_each_with_its_source(tmp_path):
    main = write(tmp_path / "kioskd.toml",
                 '[video]\nfps = 0\nwidth = "wide"\n[log]\nlevel = "loud"\n')
    dropin = write(tmp_path / "kioskd.conf.d" / "50-site.toml",
                   '[signaling]\nurl = "ws://server"\n[audio]\ntone_hz = 5\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, ["call.ring_timeout_s=301"], env={})
    found = {(i.source, i.key) for i in issues_of(excinfo)}
    assert found == {
        (str(main), "video.fps"), (str(main), "video.width"), (str(main), "log.level"),
        (str(dropin), "signaling.url"), (str(dropin), "audio.tone_hz"),
        ("--set", "call.ring_timeout_s"),
    }
    lines = str(excinfo.value).splitlines()
    assert len(lines) == 6
    assert f"{main}: video.fps: 0 is out of range; use a whole number from 1 to 60 " \
           "(frames per second)" in lines
    assert "--set: call.ring_timeout_s: 301 is out of range; use a number greater than 0 " \
           "and at most 300 (seconds)" in lines


def test_overridden_bad_value_is_not_an_error(tmp_path):
    main = write(tmp_path / "kioskd.toml", "[video]\nfps = 99\n")
    assert load_config(main, ["video.fps=30"], env={}).video.fps == 30


@pytest.mark.parametrize("line, key, fragment", [
    ("[video]\nfps = 24.0", "video.fps", "24.0 is a float"),
    ("[video]\nfps = true", "video.fps", "true is a boolean"),
    ('[video]\nfps = "24"', "video.fps", '"24" is a string; use a whole number'),
    ("[answer]\ndelay_s = true", "answer.delay_s", "true is a boolean; use a number from 0 to 60"),
    ("[answer]\ndelay_s = nan", "answer.delay_s", "not a finite number"),
    ("[answer]\ndelay_s = 61", "answer.delay_s", "61 is out of range"),
    ("[signaling]\nverify_tls = \"yes\"", "signaling.verify_tls", "use true or false"),
    ("[signaling]\nconnect_timeout_s = 0", "signaling.connect_timeout_s", "greater than 0"),
    ("[call]\ndisconnect_grace_s = -1", "call.disconnect_grace_s", "of at least 0"),
    ("[call]\nring_timeout_s = 0", "call.ring_timeout_s", "greater than 0 and at most 300"),
    ("[call]\ncontact = 1.5", "call.contact", "1.5 is a float"),
    ('[kiosk]\nname = ""', "kiosk.name", "must not be empty"),
    ('[video]\nsource = ""', "video.source", "must not be empty"),
    ("[kiosk]\nname = 5", "kiosk.name", "5 is an integer; use a non-empty string"),
    ('[answer]\nallow = "alice"', "answer.allow", 'e.g. ["alice"]'),
    ("[answer]\nallow = [true]", "answer.allow[0]", "true is a boolean"),
    ("[signaling]\nurl = 2024-01-01", "signaling.url", "2024-01-01 is a date/time"),
    ("[display]\nmode = 1", "display.mode", 'use one of "none", "window", "fullscreen"'),
])
def test_wrong_types_and_ranges(tmp_path, line, key, fragment):
    main = write(tmp_path / "kioskd.toml", line + "\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    issue = only_issue(excinfo)
    assert (issue.source, issue.key) == (str(main), key)
    assert fragment in issue.message


def test_numbers_accepted_where_floats_or_ids_expected():
    config = load_config(None, ["call.ring_timeout_s=300", "answer.allow=[1, 2]",
                                "call.contact=7"], env={})
    assert config.call.ring_timeout_s == 300.0 and isinstance(config.call.ring_timeout_s, float)
    assert config.answer.allow == ("1", "2")
    assert config.call.contact == "7"


def test_unknown_key_and_section(tmp_path):
    main = write(tmp_path / "kioskd.toml",
                 "[video]\nfsp = 24\n[vidoe]\nfps = 24\n[rtc.extra]\nx = 1\n")
    dropin = write(tmp_path / "kioskd.conf.d" / "a.toml", "fps = 24\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    by_key = {i.key: i for i in issues_of(excinfo)}
    assert set(by_key) == {"video.fsp", "vidoe", "rtc.extra", "fps"}
    assert by_key["video.fsp"].source == str(main)
    assert by_key["video.fsp"].message == (
        "unknown key video.fsp (did you mean fps?); known keys in [video]: "
        "source, width, height, fps, encoder, bitrate_kbps, encoder_speed, device, input_format, "
        "file, shed_under_load")
    assert by_key["vidoe"].message.startswith("unknown section [vidoe] (did you mean video?); "
                                              "known sections: kiosk, signaling,")
    assert "known keys in [rtc]: ice_servers, video_codecs" in by_key["rtc.extra"].message
    assert by_key["fps"].source == str(dropin)
    assert "put it under [video]" in by_key["fps"].message


def test_section_must_be_a_table(tmp_path):
    main = write(tmp_path / "kioskd.toml", "video = 5\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    issue = only_issue(excinfo)
    assert issue.key == "video" and "must be a section" in issue.message


def test_toml_syntax_error_names_file_and_line(tmp_path):
    main = write(tmp_path / "kioskd.toml", '[video]\nfps = 24\nwidth = = 3\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    issue = only_issue(excinfo)
    assert issue.source == str(main)
    assert "line 3" in issue.message
    assert str(excinfo.value).startswith(f"{main}: TOML syntax error")


def test_syntax_error_in_dropin_still_reports_other_problems(tmp_path):
    main = write(tmp_path / "kioskd.toml", "[video]\nfps = 0\n")
    dropin = write(tmp_path / "kioskd.conf.d" / "x.toml", "[video\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    assert [(i.source, i.key) for i in issues_of(excinfo)] == [
        (str(dropin), ""), (str(main), "video.fps")]


def test_check_config_file(tmp_path):
    good = write(tmp_path / "good" / "kioskd.toml", "[video]\nfps = 30\n")
    bad = write(tmp_path / "bad" / "kioskd.toml", '[answer]\nmode = "x"\n[video]\nfps = 0\n')
    assert check_config_file(good) == []
    assert [i.key for i in check_config_file(bad)] == ["answer.mode", "video.fps"]


# -- media back ends: known, and installed ---------------------------------------------------


def missing(monkeypatch, table, name: str) -> None:
    """The module `name` in `table` needs is not installed (its requirement now names a module
    that exists nowhere); what to install stays the real advice."""
    need = table.requires[name]
    monkeypatch.setitem(table.requires, name,
                        dataclasses.replace(need, module="kioskd_test_no_such_module"))


def test_an_unknown_back_end_is_refused_with_the_known_names(tmp_path):
    main = write(tmp_path / "kioskd.toml", '[video]\nsource = "picamra2"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    assert str(excinfo.value) == (
        f'{main}: video.source: unknown video.source "picamra2" (did you mean picamera2?); '
        "known: file, picamera2, synthetic, v4l2")
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, ["audio.sink=speaker"], env={})
    assert only_issue(excinfo) == ConfigIssue(
        "--set", "audio.sink", 'unknown audio.sink "speaker"; known: alsa, null')


def test_a_back_end_registered_by_a_test_is_known(monkeypatch):
    monkeypatch.setitem(registry.VIDEO_SOURCES, "fake", "kioskd.media.synthetic:SyntheticCamera")
    assert load_config(None, ["video.source=fake"], env={}).video.source == "fake"


@pytest.mark.parametrize("key", ["audio.source", "audio.sink"])
def test_alsa_without_pyalsaaudio_says_what_to_install(monkeypatch, tmp_path, key):
    missing(monkeypatch, registry.AUDIO_SOURCES if key == "audio.source"
            else registry.AUDIO_SINKS, "alsa")
    section, name = key.split(".")
    main = write(tmp_path / "kioskd.toml", f'[{section}]\n{name} = "alsa"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    issue = only_issue(excinfo)
    assert (issue.source, issue.key) == (str(main), key)
    assert issue.message.startswith(f'{key} "alsa" needs the Python module '
                                    "kioskd_test_no_such_module, which is not installed: ")
    assert "pip install -c constraints.txt '.[alsa]'" in issue.message
    assert "libasound2-dev" in issue.message and "pip install pyalsaaudio" in issue.message


def test_picamera2_missing_says_apt_install(monkeypatch):
    missing(monkeypatch, registry.VIDEO_SOURCES, "picamera2")
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, ["video.source=picamera2"], env={})
    issue = only_issue(excinfo)
    assert (issue.source, issue.key) == ("--set", "video.source")
    assert "apt install python3-picamera2" in issue.message
    assert "--system-site-packages" in issue.message


def test_the_check_finds_a_module_without_importing_it(fake_picamera2, monkeypatch):
    _forget_picamera2()  # the fixture imported the fake: it is on sys.path, not imported now
    assert load_config(None, ["video.source=picamera2"], env={}).video.source == "picamera2"
    assert "picamera2" not in sys.modules
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    assert [i.key for i in check_config_file(None, ["video.source=picamera2"])] == [
        "video.source"]


def test_kioskctl_config_check_prints_the_problem(tmp_path, capsys):
    main = write(tmp_path / "kioskd.toml", '[video]\nsource = "picamra2"\n')
    assert ctl_main(["config", "check", str(main)]) == 1
    assert capsys.readouterr().err == (
        f'{main}: video.source: unknown video.source "picamra2" (did you mean picamera2?); '
        "known: file, picamera2, synthetic, v4l2\nkioskctl: 1 problem(s) found\n")


# -- rtc --------------------------------------------------------------------------------------


def test_ice_servers(tmp_path):
    main = write(tmp_path / "kioskd.toml", """
[rtc]
video_codecs = ["H264"]
[[rtc.ice_servers]]
urls = "stun:stun.example.org:3478"
[[rtc.ice_servers]]
urls = ["turn:t.example.org:3478", "turns:t.example.org:5349"]
username = "u"
credential = "p"
""")
    config = load_config(main, env={})
    assert config.rtc.video_codecs == ("H264",)
    assert config.rtc.ice_servers == (
        IceServer(("stun:stun.example.org:3478",), None, None),
        IceServer(("turn:t.example.org:3478", "turns:t.example.org:5349"), "u", "p"),
    )


def test_ice_server_errors(tmp_path):
    main = write(tmp_path / "kioskd.toml", """
[rtc]
ice_servers = [
  { urls = "http://stun.example.org" },
  { url = "stun:x" },
  "stun:y",
  { urls = [] },
  { urls = "turn:t.example.org" },
  { urls = ["stun:ok", 5], username = 1 },
]
""")
    with pytest.raises(ConfigError) as excinfo:
        load_config(main, env={})
    by_key = {i.key: i.message for i in issues_of(excinfo)}
    assert "must start with stun:, stuns:, turn:, turns:" in by_key["rtc.ice_servers[0].urls"]
    assert "did you mean urls?" in by_key["rtc.ice_servers[1].url"]
    assert "missing" in by_key["rtc.ice_servers[1].urls"]
    assert "each server is a table" in by_key["rtc.ice_servers[2]"]
    assert "must not be empty" in by_key["rtc.ice_servers[3].urls"]
    assert "needs both username and credential" in by_key["rtc.ice_servers[4]"]
    assert "5 is an integer" in by_key["rtc.ice_servers[5].urls[1]"]
    assert "use a string" in by_key["rtc.ice_servers[5].username"]
    assert {i.source for i in issues_of(excinfo)} == {str(main)}


def test_ice_servers_must_be_an_array():
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, ['rtc.ice_servers="stun:x"'], env={})
    assert only_issue(excinfo).key == "rtc.ice_servers"


def test_codecs_normalised_and_checked():
    config = load_config(None, ['rtc.video_codecs=["h264", "vp8"]'], env={})
    assert config.rtc.video_codecs == ("H264", "VP8")
    assert load_config(None, ['rtc.video_codecs=["Vp8"]'], env={}).rtc.video_codecs == ("VP8",)
    for value, key, fragment in [
        ("[]", "rtc.video_codecs", "must not be empty"),
        ('["AV1"]', "rtc.video_codecs[0]", '"AV1" is not allowed; use one of "VP8", "H264"'),
        ('["vp8", "VP8"]', "rtc.video_codecs[1]", "listed twice"),
        ('"VP8"', "rtc.video_codecs", 'e.g. ["VP8"]'),
    ]:
        with pytest.raises(ConfigError) as excinfo:
            load_config(None, [f"rtc.video_codecs={value}"], env={})
        issue = only_issue(excinfo)
        assert (issue.source, issue.key) == ("--set", key)
        assert fragment in issue.message


# -- token ------------------------------------------------------------------------------------


def test_read_token_from_file(tmp_path):
    write(tmp_path / "token", "  s3cret-token\n")
    main = write(tmp_path / "kioskd.toml", '[signaling]\ntoken_file = "token"\n')
    config = load_config(main, env={})
    assert config.signaling.token_file == str(tmp_path / "token")  # relative to the main file
    assert read_token(config, env={}) == "s3cret-token"
    absolute = load_config(None, [f"signaling.token_file={tmp_path / 'token'}"], env={})
    assert read_token(absolute, env={}) == "s3cret-token"


def test_read_token_from_credentials_directory(tmp_path):
    write(tmp_path / "creds" / "kioskd-token", "from-systemd\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    assert read_token(load_config(env={}), env=env) == "from-systemd"
    config = load_config(env=env)
    assert config.signaling.token_file == str(tmp_path / "creds" / "kioskd-token")
    assert read_token(config, env={}) == "from-systemd"


def test_configured_token_file_wins_over_credentials(tmp_path):
    write(tmp_path / "creds" / "kioskd-token", "from-systemd\n")
    write(tmp_path / "mine", "mine\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    config = load_config(None, [f"signaling.token_file={tmp_path / 'mine'}"], env=env)
    assert read_token(config, env=env) == "mine"


def test_missing_token_file_error(tmp_path):
    missing = tmp_path / "token"
    config = load_config(None, [f"signaling.token_file={missing}"], env={})
    with pytest.raises(ConfigError) as excinfo:
        read_token(config, env={})
    issue = only_issue(excinfo)
    assert (issue.source, issue.key) == (str(missing), "signaling.token_file")
    assert "create it with the token from your signaling server's tokens file" in issue.message


def test_empty_token_file_error(tmp_path):
    write(tmp_path / "token", " \n\n")
    config = load_config(None, [f"signaling.token_file={tmp_path / 'token'}"], env={})
    with pytest.raises(ConfigError) as excinfo:
        read_token(config, env={})
    issue = only_issue(excinfo)
    assert issue.key == "signaling.token_file" and "empty" in issue.message


def test_no_token_configured_error(tmp_path):
    main = write(tmp_path / "kioskd.toml", "")
    with pytest.raises(ConfigError) as excinfo:
        read_token(load_config(main, env={}), env={})
    issue = only_issue(excinfo)
    assert (issue.source, issue.key) == (str(tmp_path / "kioskd.toml"), "signaling.token_file")
    assert "LoadCredential=kioskd-token" in issue.message
    assert "tokens file" in issue.message


def test_token_never_appears_in_errors(tmp_path):
    write(tmp_path / "token", "line-one-secret\nline-two-secret\n")
    config = load_config(None, [f"signaling.token_file={tmp_path / 'token'}"], env={})
    with pytest.raises(ConfigError) as excinfo:
        read_token(config, env={})
    assert "secret" not in str(excinfo.value)


# -- the result -------------------------------------------------------------------------------


def test_config_is_frozen():
    config = load_config(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.video.fps = 30  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.video = config.video  # type: ignore[misc]
    assert isinstance(config.answer.allow, tuple)
    assert hash(config)  # every part is immutable


def test_config_as_dict_masks_credentials():
    config = load_config(None, [
        'rtc.ice_servers=[{urls="turn:t.example.org", username="u", credential="pw"}]'], env={})
    shown = config_as_dict(config)
    assert shown["rtc"]["ice_servers"] == [
        {"urls": ["turn:t.example.org"], "username": "u", "credential": "***"}]
    assert shown["rtc"]["video_codecs"] == ["VP8", "H264"]
    assert shown["video"]["fps"] == 30
    assert set(shown) == set(schema.sections())
    raw = config_as_dict(config, mask_secrets=False)
    assert raw["rtc"]["ice_servers"][0]["credential"] == "pw"


def test_config_as_dict_round_trips(tmp_path):
    config = load_config(None, ['answer.allow=["a"]', 'rtc.ice_servers=[{urls="stun:s"}]'],
                         env={})
    lines = []
    for section, table in config_as_dict(config, mask_secrets=False).items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {schema.toml_value(v)}" for k, v in table.items()]
    main = write(tmp_path / "kioskd.toml", "\n".join(lines) + "\n")
    assert load_config(main, env={}) == config


def test_config_error_str_is_one_line_per_issue():
    error = ConfigError([ConfigIssue("a.toml", "video.fps", "bad"), ConfigIssue("--set", "x", "y"),
                         ConfigIssue("b.toml", "", "TOML syntax error")])
    assert str(error) == "a.toml: video.fps: bad\n--set: x: y\nb.toml: TOML syntax error"


# -- hardware profiles ------------------------------------------------------------------------


@pytest.mark.parametrize("model,width,fps,encoder,speed,first_codec", [
    ("Raspberry Pi 4 Model B Rev 1.4\x00", 1280, 30, "hardware", "fast", "H264"),
    ("Raspberry Pi Zero 2 W Rev 1.0\x00", 640, 24, "hardware", "fast", "H264"),
    ("Raspberry Pi 5 Model B Rev 1.0\x00", 640, 24, "software", "fast", "VP8"),
    ("", 1280, 30, "software", "fast", "VP8"),
])
def test_auto_profile_follows_the_board(model, width, fps, encoder, speed, first_codec):
    config = load_config(None, board_model=model, env={})
    assert (config.video.width, config.video.fps, config.video.encoder,
            config.video.encoder_speed) == (width, fps, encoder, speed)
    assert config.rtc.video_codecs[0] == first_codec


def test_explicit_keys_win_over_the_profile(tmp_path):
    main = write(tmp_path / "kioskd.toml", '[media]\nprofile = "pi4"\n[video]\nfps = 15\n')
    config = load_config(main, ["rtc.video_codecs=[\"VP8\"]"], env={})
    assert (config.video.width, config.video.height, config.video.fps) == (1280, 720, 15)
    assert config.video.encoder == "hardware" and config.rtc.video_codecs == ("VP8",)
