"""Provisioning without a keyboard: settings and token dropped on the SD card's boot partition.

Before a kiosk's first boot an admin puts, in the FAT boot partition's folder `kioskd/`
(`/boot/firmware/kioskd/` on the running Pi; any PC can write it):

    kioskd.toml   a drop-in: kiosk name, signaling.url, answer mode, ... (docs/configuration.md)
    token         the kiosk's signaling token, one line

At boot, `kioskd-provision.service` runs `kioskctl provision` before kioskd starts: the drop-in
becomes /etc/kioskd/kioskd.conf.d/50-provisioned.toml and the token /etc/kioskd/token (root,
mode 0600), and both leave the FAT partition (which anyone who holds the card can read). A
drop-in with errors is not installed: it stays where it is, with ERROR.txt beside it saying
what is wrong, and the kiosk keeps its previous settings. PROVISIONED.txt records what was
taken, and when, so that whoever looks at the card later can see it happened.

Running it again with new files re-provisions the kiosk (a new server, a new token).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, load_config

log = logging.getLogger(__name__)

BOOT_FOLDER = Path("/boot/firmware/kioskd")
ETC = Path("/etc/kioskd")
DROPIN_NAME = "50-provisioned.toml"
ERROR_NAME = "ERROR.txt"
RECORD_NAME = "PROVISIONED.txt"


@dataclass
class Provisioned:
    settings: bool = False  # the drop-in was installed
    token: bool = False  # the token was installed
    problems: list[str] = field(default_factory=list)  # what was refused, and why

    @property
    def changed(self) -> bool:
        return self.settings or self.token


def provision(boot: Path = BOOT_FOLDER, etc: Path = ETC) -> Provisioned:
    """Take what the boot folder holds into `etc`; see the module docstring."""
    result = Provisioned()
    if not boot.is_dir():
        return result
    (boot / ERROR_NAME).unlink(missing_ok=True)
    token = boot / "token"
    if token.exists():
        _take_token(token, etc, result)
    settings = boot / "kioskd.toml"
    if settings.exists():
        _take_settings(settings, etc, result)
    if result.problems:
        _write(boot / ERROR_NAME, "kioskd could not use what is in this folder:\n\n"
               + "\n".join(result.problems) + "\n\nFix it and put the kiosk's card back.\n")
    if result.changed:
        taken = [name for name, done in (("kioskd.toml", result.settings),
                                         ("token", result.token)) if done]
        _write(boot / RECORD_NAME, f"{time.strftime('%Y-%m-%d %H:%M:%S %z')}: kioskd took "
               f"{' and '.join(taken)} from this folder.\n")
    return result


def _take_token(source: Path, etc: Path, result: Provisioned) -> None:
    text = source.read_text(encoding="utf-8", errors="replace").strip()
    if not text or "\n" in text:
        result.problems.append("token: the file must hold the kiosk's token on one line")
        return
    etc.mkdir(parents=True, exist_ok=True)
    _write(etc / "token", text + "\n", mode=0o600)
    _erase(source)  # the secret does not stay on the FAT partition
    result.token = True
    log.info("provision: the token is now %s", etc / "token")


def _take_settings(source: Path, etc: Path, result: Provisioned) -> None:
    dropins = etc / "kioskd.conf.d"
    dropins.mkdir(parents=True, exist_ok=True)
    target = dropins / DROPIN_NAME
    previous = target.read_bytes() if target.exists() else None
    target.write_bytes(source.read_bytes())
    main = etc / "kioskd.toml"
    try:
        # Checked as the daemon will read it: with the main file and the other drop-ins.
        load_config(main if main.exists() else target)
    except ConfigError as exc:
        if previous is None:
            target.unlink()
        else:
            target.write_bytes(previous)
        result.problems.append(f"kioskd.toml has errors; it was not used:\n"
                               f"{str(exc).replace(str(target), 'kioskd.toml')}")
        return
    target.chmod(0o644)  # the settings hold no secret (the token is apart)
    source.unlink()
    result.settings = True
    log.info("provision: the settings are now %s", target)


def _write(path: Path, text: str, mode: int | None = None) -> None:
    """Write whole or not at all: a power cut leaves the old file or the new one. `mode`
    (None on the FAT partition, which has none) is set whatever the umask."""
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode else 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, path)


def _erase(path: Path) -> None:
    """Overwrite, then remove. FAT keeps no copies of its own, but an SD card's wear
    levelling may: this is the best a program can do; the docs say so."""
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.write(b"\0" * size)
        file.flush()
        os.fsync(file.fileno())
    path.unlink()
