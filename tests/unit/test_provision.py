"""Provisioning from the boot partition's kioskd/ folder into /etc/kioskd (scratch folders)."""

from __future__ import annotations

import stat

import pytest

from kioskd.cli import ctl_main
from kioskd.config import load_config
from kioskd.provision import DROPIN_NAME, ERROR_NAME, RECORD_NAME, provision

SETTINGS = '[kiosk]\nname = "Front door"\n[signaling]\nurl = "https://calls.example.org"\n'


@pytest.fixture
def folders(tmp_path):
    boot, etc = tmp_path / "boot" / "kioskd", tmp_path / "etc" / "kioskd"
    boot.mkdir(parents=True)
    etc.mkdir(parents=True)
    (etc / "kioskd.toml").write_text("# the shipped, all-commented main file\n[kiosk]\n")
    return boot, etc


def test_settings_and_token_move_into_etc_and_leave_the_boot_partition(folders):
    boot, etc = folders
    (boot / "kioskd.toml").write_text(SETTINGS)
    (boot / "token").write_text("s3cret-token\r\n")
    result = provision(boot, etc)
    assert result.settings and result.token and not result.problems
    token = etc / "token"
    assert token.read_text() == "s3cret-token\n"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    config = load_config(etc / "kioskd.toml")
    assert config.kiosk.name == "Front door"
    assert config.signaling.url == "https://calls.example.org"
    assert not (boot / "token").exists() and not (boot / "kioskd.toml").exists()
    assert "took kioskd.toml and token" in (boot / RECORD_NAME).read_text()
    assert "s3cret" not in (boot / RECORD_NAME).read_text()


def test_a_drop_in_with_errors_stays_with_an_error_note_and_changes_nothing(folders):
    boot, etc = folders
    (boot / "kioskd.toml").write_text(SETTINGS)
    provision(boot, etc)
    (boot / "kioskd.toml").write_text('[video]\nfps = 0\n[kiosk]\nnmae = "x"\n')
    result = provision(boot, etc)
    assert not result.settings and result.problems
    error = (boot / ERROR_NAME).read_text()
    assert "video.fps" in error and "kiosk.nmae" in error and "did you mean name" in error
    assert (boot / "kioskd.toml").exists()  # left for the admin to fix
    assert load_config(etc / "kioskd.toml").kiosk.name == "Front door"  # the previous one
    assert (etc / "kioskd.conf.d" / DROPIN_NAME).read_text() == SETTINGS


def test_a_token_that_is_not_one_line_is_refused(folders):
    boot, etc = folders
    (boot / "token").write_text("one\ntwo\n")
    result = provision(boot, etc)
    assert not result.token and "one line" in result.problems[0]
    assert not (etc / "token").exists() and (boot / "token").exists()


def test_an_empty_or_missing_folder_does_nothing(folders, tmp_path):
    boot, etc = folders
    assert not provision(boot, etc).changed
    assert not provision(tmp_path / "nowhere", etc).changed
    assert list(boot.iterdir()) == []


def test_kioskctl_provision_reports_and_fails_on_a_problem(folders, capsys):
    boot, etc = folders
    (boot / "token").write_text("abc\n")
    assert ctl_main(["provision", "--from", str(boot), "--etc", str(etc)]) == 0
    assert "provisioned from" in capsys.readouterr().out
    (boot / "token").write_text("")
    assert ctl_main(["provision", "--from", str(boot), "--etc", str(etc)]) == 1
    assert "one line" in capsys.readouterr().err
