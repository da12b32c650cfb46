"""Entry points: `kioskd` (the daemon: daemon.py) and `kioskctl` (ctl.py). Arguments only.

kioskctl's common options (--config, --set, --json) work before and after the subcommand, as
people type them: `kioskctl --json status` and `kioskctl status --json` are the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .ctl import DEFAULT_CONFIG


def _config_options(parser: argparse.ArgumentParser, suffix: str = "",
                    default: Any = None) -> None:
    """--config and --set; in a subcommand (suffix "_sub") they land beside the main ones."""
    parser.add_argument("--config", dest=f"config{suffix}", metavar="PATH", default=default,
                        help=f"main config file (default: {DEFAULT_CONFIG} if it exists)")
    parser.add_argument("--set", dest=f"overrides{suffix}", action="append",
                        default=[] if default is None else default,
                        metavar="KEY=VALUE", help="override one key, e.g. --set video.fps=24")


def daemon_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kioskd", description="The video-calling kiosk daemon.")
    _config_options(parser)
    args = parser.parse_args(argv)
    from .ctl import config_path
    from .daemon import main

    return main(config_path(args.config), args.overrides)


def _ctl_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _config_options(common, "_sub", argparse.SUPPRESS)
    common.add_argument("--json", dest="json_sub", action="store_true",
                        default=argparse.SUPPRESS, help="machine-readable output")
    parser = argparse.ArgumentParser(prog="kioskctl", description="Control a running kioskd.")
    _config_options(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    command("status", "state, peer and media counts")
    call = command("call", "call a user (default: call.contact)")
    call.add_argument("user", nargs="?", help="user id to call")
    call.add_argument("--audio", action="store_true", help="audio-only call")
    calls = command("calls", "the call history, newest first")
    calls.add_argument("--missed", action="store_true", help="only missed calls")
    calls.add_argument("--limit", type=int, default=20, metavar="N", help="at most N calls")
    command("answer", "answer the ringing call")
    command("decline", "decline the ringing call")
    command("hangup", "end the current call")
    for name, what, meaning in (
            ("mute", "the microphone (silence is sent)", "on: muted; off: back on"),
            ("camera", "the camera (black is sent)", "off: camera off; on: camera on")):
        toggle = command(name, f"turn {what} off or on; no argument toggles")
        toggle.add_argument("state", nargs="?", choices=("on", "off"), help=meaning)
    command("reload", "re-read the config file (a call in progress goes on)")
    command("selftest", "open camera, microphone, speaker and display, reach the signaling "
                        "server; exit code 0 if all pass")
    config_cmd = command("config", "check or show the configuration")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file (exit code 0 if good)",
                                  parents=[common])
    check.add_argument("file", nargs="?", help="file to check (default: --config)")
    config_sub.add_parser("show", help="the merged configuration, secrets masked",
                          parents=[common])
    provision = command("provision", "take kioskd.toml and token from the boot partition's "
                                     "kioskd/ folder into /etc/kioskd (run at boot)")
    provision.add_argument("--from", dest="boot", metavar="DIR",
                           default="/boot/firmware/kioskd", help="the folder to take them from")
    provision.add_argument("--etc", metavar="DIR", default="/etc/kioskd",
                           help="the configuration folder")
    return parser


def _request_fields(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "call":
        return {"user": args.user, "type": "audio" if args.audio else "video"}
    if args.command == "calls":
        return {"limit": args.limit, "missed": args.missed}
    if args.command == "mute":
        return {"off": None if args.state is None else args.state == "on"}
    if args.command == "camera":
        return {"off": None if args.state is None else args.state == "off"}
    return {}


def ctl_main(argv: Sequence[str] | None = None) -> int:
    args = _ctl_parser().parse_args(argv)
    config = getattr(args, "config_sub", None) or args.config
    overrides = [*args.overrides, *getattr(args, "overrides_sub", [])]
    as_json = args.json or getattr(args, "json_sub", False)
    from . import ctl

    if args.command == "config" and args.config_command == "check":
        return ctl.config_check(args.file, config, overrides, as_json)
    if args.command == "config":
        return ctl.config_show(config, overrides, as_json)
    if args.command == "selftest":
        return ctl.selftest(config, overrides, as_json)
    if args.command == "provision":
        return ctl.provision(args.boot, args.etc)
    return ctl.control(args.command, _request_fields(args), config, overrides, as_json)


if __name__ == "__main__":
    sys.exit(daemon_main())
