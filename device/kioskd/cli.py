"""Entry points: `kioskd` (the daemon) and `kioskctl` (talks to a running daemon)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

DEFAULT_CONFIG = Path("/etc/kioskd/kioskd.toml")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help=f"main config file (default: {DEFAULT_CONFIG} if it exists)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one key, e.g. --set video.fps=24")


def _load(args: argparse.Namespace):
    from .config import load_config

    path = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path, args.overrides)


# syslog priorities: the journal reads a "<N>" line prefix as the entry's level.
SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                   logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """Under systemd: the level as the journal's own priority, and no timestamp (the journal
    stamps every line itself)."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{super().format(record)}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):  # set by systemd when stderr is the journal
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # aioice and aiortc are chatty at info: every candidate pair would be a line.
    for noisy in ("aioice", "aiortc", "engineio", "socketio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


# -- kioskd -----------------------------------------------------------------------------------


def reload_config(app: Any, overrides: Sequence[str]) -> bool:
    """Re-read the config the daemon started with (SIGHUP, kioskctl reload)."""
    from .config import ConfigError, load_config

    log = logging.getLogger("kioskd")
    try:
        new = load_config(app.config.path, overrides)
    except ConfigError as exc:
        log.error("config reload refused, keeping the running config:\n%s", exc)
        return False
    app.apply_config(new)
    return True


async def run_daemon(config: Any, token: str, overrides: Sequence[str] = ()) -> None:
    from .app import KioskApp
    from .control import ControlServer, socket_path

    app = KioskApp(config, token)
    def reload() -> bool:
        app.notifier.reloading()
        try:
            return reload_config(app, overrides)
        finally:
            app.notifier.ready()

    app.reload = reload
    control = ControlServer(app, socket_path(config.control.socket))
    await control.start()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    logging.getLogger("kioskd").info(
        "kioskd %r started: answer mode %s, signaling %s",
        config.kiosk.name, config.answer.mode, config.signaling.url)
    try:
        await app.run()
    except asyncio.CancelledError:
        logging.getLogger("kioskd").info("stopping")
    finally:
        await control.stop()


def daemon_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kioskd", description="The video-calling kiosk daemon.")
    _config_args(parser)
    args = parser.parse_args(argv)
    from .config import ConfigError, read_token

    try:
        config = _load(args)
        token = read_token(config)
    except ConfigError as exc:
        print(f"kioskd: configuration error:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(config.log.level)
    try:
        asyncio.run(run_daemon(config, token, args.overrides))
    except KeyboardInterrupt:
        pass
    return 0


# -- kioskctl ---------------------------------------------------------------------------------


def _print_status(status: dict[str, Any]) -> None:
    print(f"{status['kiosk']}: {status['state']}, signaling {status['signaling']}"
          f" ({status['reconnects']} reconnects)")
    call = status.get("call")
    if call:
        who = f"{call['peer_name']} ({call['peer']})" if call["peer_name"] else str(call["peer"])
        print(f"  {call['direction']} {call['type']} call {call['call_id']} with {who}")
        if call["connected_for_s"] is not None:
            print(f"  connected for {call['connected_for_s']} s")
        media = call["media"]  # the call's receiving counts (app.CallMedia.counts)
        print(f"  received video: {media.get('video_frames')} frames, "
              f"audio: {media.get('audio_frames')} frames")
    # A device the kiosk goes without, or a fallback it makes do with (docs/media.md).
    for key, text in {**(status.get("media_notices") or {}),
                      **(status.get("media_errors") or {})}.items():
        print(f"  {key}: {text}")
    last = status.get("last_call")
    if last:
        print(f"  last call: {last['direction']} with {last['peer']}: {last['outcome']}"
              f" ({last['reason']}), {last['duration_s']} s")


def _print_calls(calls: list[dict[str, Any]]) -> None:
    if not calls:
        print("no calls yet")
        return
    import time as _time

    for call in calls:
        started = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(call["started_at"]))
        who = f"{call['peer_name']} ({call['peer_id']})" if call["peer_name"] \
            else str(call["peer_id"])
        arrow = "<-" if call["direction"] == "incoming" else "->"
        duration = f"{call['duration_s']:.0f} s" if call.get("duration_s") else "-"
        reason = f" ({call['reason']})" if call.get("reason") else ""
        print(f"{started}  {arrow} {who:<28} {call['call_type']:<5} {call['outcome']}{reason}"
              f"  {duration}")


def _selftest_command(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .selftest import run_selftest, summary

    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"kioskctl: configuration error:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    report = asyncio.run(run_selftest(config))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(summary(report))
    return 0 if report["ok"] else 1


def _config_command(args: argparse.Namespace) -> int:
    from .config import ConfigError, config_as_dict

    if args.config_command == "check" and args.file:
        args.config = args.file
    try:
        config = _load(args)
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"ok": False, "errors": [
                {"file": i.source, "key": i.key, "message": i.message} for i in exc.issues]},
                indent=2))
        else:
            print(exc, file=sys.stderr)
            print(f"kioskctl: {len(exc.issues)} problem(s) found", file=sys.stderr)
        return 1
    if args.config_command == "check":
        where = config.path or "built-in defaults"
        print(json.dumps({"ok": True, "file": str(where)}) if args.json else f"{where}: ok")
        return 0
    shown = config_as_dict(config, mask_secrets=True)
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        for section, keys in shown.items():
            print(f"[{section}]")
            for key, value in keys.items():
                print(f"{key} = {json.dumps(value)}")
            print()
    return 0


def ctl_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kioskctl", description="Control a running kioskd.")
    _config_args(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="state, peer and media counts")
    call = sub.add_parser("call", help="call a user (default: call.contact)")
    call.add_argument("user", nargs="?", help="user id to call")
    call.add_argument("--audio", action="store_true", help="audio-only call")
    calls = sub.add_parser("calls", help="the call history, newest first")
    calls.add_argument("--missed", action="store_true", help="only missed calls")
    calls.add_argument("--limit", type=int, default=20, metavar="N", help="at most N calls")
    sub.add_parser("answer", help="answer the ringing call")
    sub.add_parser("decline", help="decline the ringing call")
    sub.add_parser("hangup", help="end the current call")
    for name, what in (("mute", "the microphone (silence is sent)"),
                       ("camera", "the camera (black is sent)")):
        toggle = sub.add_parser(name, help=f"turn {what} off or on; no argument toggles")
        toggle.add_argument("state", nargs="?", choices=("on", "off"),
                            help="on: muted / camera off; off: back on" if name == "mute"
                            else "off: camera off; on: camera on")
    sub.add_parser("reload", help="re-read the config file (a call in progress goes on)")
    sub.add_parser("selftest", help="open camera, microphone, speaker and display, reach the "
                                    "signaling server; exit code 0 if all pass")
    config_cmd = sub.add_parser("config", help="check or show the configuration")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file (exit code 0 if good)")
    check.add_argument("file", nargs="?", help="file to check (default: --config)")
    config_sub.add_parser("show", help="the merged configuration, secrets masked")
    args = parser.parse_args(argv)

    from .config import ConfigError
    from .control import request, socket_path

    if args.command == "config":
        return _config_command(args)
    if args.command == "selftest":
        return _selftest_command(args)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"kioskctl: configuration error:\n{exc}", file=sys.stderr)
        return 2
    path = socket_path(config.control.socket)
    fields: dict[str, Any] = {}
    if args.command == "call":
        fields = {"user": args.user, "type": "audio" if args.audio else "video"}
    elif args.command == "calls":
        fields = {"limit": args.limit, "missed": args.missed}
    elif args.command == "mute":
        fields = {"off": None if args.state is None else args.state == "on"}
    elif args.command == "camera":
        fields = {"off": None if args.state is None else args.state == "off"}
    try:
        reply = asyncio.run(request(path, args.command, **fields))
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"kioskctl: kioskd is not running (no control socket at {path})", file=sys.stderr)
        return 3
    except PermissionError:
        print(f"kioskctl: no permission for {path}: run as root or as a member of the kioskd "
              "group", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(reply, indent=2))
    elif not reply.get("ok"):
        print(f"kioskctl: {reply.get('error')}", file=sys.stderr)
    elif args.command == "status":
        _print_status(reply["status"])
    elif args.command == "call":
        print(f"calling {reply['calling']}")
    elif args.command == "calls":
        _print_calls(reply["calls"])
    elif args.command == "mute":
        print("microphone muted" if reply["off"] else "microphone on")
    elif args.command == "camera":
        print("camera off" if reply["off"] else "camera on")
    else:
        print("ok")
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(daemon_main())
