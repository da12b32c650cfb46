"""The shipped systemd files, checked by systemd's own tools (skipped where they are missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kioskd.calllog import FILE_NAME
from kioskd.config.loader import CREDENTIAL_NAME

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD / "kioskd.service"
MAX_EXPOSURE = 2.5


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed (apt-get install systemd)")


def run(*argv: str, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin.read_text() if stdin else None,
                          stdin=None if stdin else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def settings(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, in order; keys may repeat (DeviceAllow=)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verifiable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at a binary that exists here: verify checks it."""
    text = UNIT.read_text() if text is None else text
    rewritten, count = re.subn(r"^ExecStart=/opt/kioskd/\.venv/bin/kioskd ",
                               f"ExecStart={shutil.which('true')} ", text, flags=re.M)
    assert count == 1
    copy = tmp_path / UNIT.name
    copy.write_text(rewritten)
    return copy


@needs("systemd-analyze")
def test_unit_verifies(tmp_path: Path) -> None:
    result = run("systemd-analyze", "verify", "--man=no", str(verifiable_copy(tmp_path)))
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if UNIT.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


@needs("systemd-analyze")
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    # verify only warns about an unknown key (exit 0): the test above must read its output.
    broken = UNIT.read_text().replace("\nUMask=", "\nUMaks=")
    result = run("systemd-analyze", "verify", "--man=no", str(verifiable_copy(tmp_path, broken)))
    assert "Unknown key 'UMaks'" in result.stderr


@needs("systemd-analyze")
def test_security_exposure(capsys: pytest.CaptureFixture[str]) -> None:
    result = run("systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for kioskd\.service: (\d+(?:\.\d+)?)",
                      result.stdout)
    assert match, result.stdout
    exposure = float(match.group(1))
    with capsys.disabled():
        print(f"\nsystemd-analyze security --offline=yes kioskd.service: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_unit_keeps_what_the_daemon_relies_on() -> None:
    unit = settings(UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == ["/opt/kioskd/.venv/bin/kioskd --config /etc/kioskd/kioskd.toml"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["WatchdogSec"] == ["30"]
    assert unit["User"] == unit["Group"] == ["kioskd"]
    # The names the code looks for: $CREDENTIALS_DIRECTORY/kioskd-token, $STATE_DIRECTORY.
    assert unit["LoadCredential"] == [f"{CREDENTIAL_NAME}:/etc/kioskd/token"]
    assert unit["StateDirectory"] == ["kioskd"] and FILE_NAME == "calls.sqlite3"
    assert unit["RuntimeDirectory"] == ["kioskd"] and unit["RuntimeDirectoryMode"] == ["0750"]
    # W^X would break every call: cffi callbacks in aiortc's DTLS need write+execute memory.
    assert "MemoryDenyWriteExecute" not in unit
    assert set(unit["SupplementaryGroups"][0].split()) == {"video", "audio", "render", "input",
                                                           "gpio"}


@needs("systemd-sysusers")
def test_sysusers_makes_the_user_and_groups(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = run("systemd-sysusers", f"--root={tmp_path}", "-",
                 stdin=SYSTEMD / "kioskd.sysusers")
    assert result.returncode == 0, result.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in
              (tmp_path / "etc" / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in
              (tmp_path / "etc" / "group").read_text().splitlines()}
    user = passwd["kioskd"]
    assert user[5:] == ["/var/lib/kioskd", "/usr/sbin/nologin"]
    assert user[3] == groups["kioskd"][2]  # primary group: kioskd, the admin group
    for group in ("video", "audio", "render", "input", "gpio"):
        assert "kioskd" in groups[group][3].split(","), group


@needs("systemd-tmpfiles")
def test_tmpfiles_protects_the_token(tmp_path: Path) -> None:
    tmpfiles = SYSTEMD / "kioskd.tmpfiles"
    assert run("systemd-tmpfiles", f"--root={tmp_path}", "--create", "-",
               stdin=tmpfiles).returncode == 0
    token = tmp_path / "etc" / "kioskd" / "token"
    assert not token.exists()  # never created empty
    token.write_text("secret\n")
    token.chmod(0o644)
    assert run("systemd-tmpfiles", f"--root={tmp_path}", "--create", "-",
               stdin=tmpfiles).returncode == 0
    assert token.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "etc" / "kioskd" / "kioskd.conf.d").is_dir()
