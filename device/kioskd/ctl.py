"""What `kioskctl` does: ask the running daemon over its control socket and print the answer.

`config show` and `selftest` use the running daemon's configuration (its file and its --set
options, which the demo is made of) unless --config or --set name another; without a daemon,
the default file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, config_as_dict, load_config, read_turn_secrets
from .control import request, socket_path

DEFAULT_CONFIG = Path("/etc/kioskd/kioskd.toml")
EXIT_NOT_RUNNING = 3


def config_path(given: str | None) -> str | None:
    """The main config file: --config, else the default file if it exists, else none."""
    if given is None and DEFAULT_CONFIG.exists():
        return str(DEFAULT_CONFIG)
    return given


def load(given: str | None, overrides: Sequence[str]) -> Config:
    return load_config(config_path(given), overrides)


def _daemon_source(config: Config) -> dict[str, Any] | None:
    """The running daemon's answer to "config" (its file and --set options), or None."""
    try:
        reply = asyncio.run(request(socket_path(config.control.socket), "config"))
    except OSError:
        return None
    return reply if reply.get("ok") else None


def load_as_daemon(given: str | None, overrides: Sequence[str]) -> Config:
    """The running daemon's config unless the command names one itself."""
    config = load(given, overrides)
    if given is None and not overrides:
        source = _daemon_source(config)
        if source is not None:
            return load_config(source["path"], source["overrides"])
    return config


def _config_error(exc: ConfigError) -> int:
    print(f"kioskctl: configuration error:\n{exc}", file=sys.stderr)
    return 2


# -- talking to the daemon ----------------------------------------------------------------


def control(command: str, fields: dict[str, Any], given: str | None,
            overrides: Sequence[str], as_json: bool) -> int:
    try:
        config = load(given, overrides)
    except ConfigError as exc:
        return _config_error(exc)
    path = socket_path(config.control.socket)
    try:
        reply = asyncio.run(request(path, command, **fields))
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"kioskctl: kioskd is not running (no control socket at {path})", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except PermissionError:
        print(f"kioskctl: no permission for {path}: run as root or as a member of the kioskd "
              "group", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if as_json:
        print(json.dumps(reply, indent=2))
    elif not reply.get("ok"):
        print(f"kioskctl: {reply.get('error')}", file=sys.stderr)
    else:
        print_reply(command, fields, reply)
    return 0 if reply.get("ok") else 1


def print_reply(command: str, fields: dict[str, Any], reply: dict[str, Any]) -> None:
    if command == "status":
        print_status(reply["status"])
    elif command == "call":
        print(f"calling {reply['calling']}")
    elif command == "calls":
        print_calls(reply["calls"], missed=bool(fields.get("missed")))
    elif command == "mute":
        print("microphone muted" if reply["off"] else "microphone on")
    elif command == "camera":
        print("camera off" if reply["off"] else "camera on")
    else:
        print("ok")


def print_status(status: dict[str, Any]) -> None:
    print(f"{status['kiosk']}: {status['state']}, signaling {status['signaling']}"
          f" ({status['reconnects']} reconnects)")
    if status["signaling"] != "online" and status.get("signaling_error"):
        print(f"  not online: {status['signaling_error']}")
    call = status.get("call")
    if call:
        who = f"{call['peer_name']} ({call['peer']})" if call["peer_name"] else str(call["peer"])
        print(f"  {call['direction']} {call['type']} call {call['call_id']} with {who}")
        if call["connected_for_s"] is not None:
            print(f"  connected for {call['connected_for_s']} s")
        if call.get("reconnecting"):
            print("  media path lost: reconnecting (call.disconnect_grace_s)")
        media = call["media"]  # the call's receiving counts (media.remote.RemoteMedia.counts)
        print(f"  received video: {media.get('video_frames')} frames, "
              f"audio: {media.get('audio_frames')} frames")
    processing = status.get("audio_processing")
    if processing:
        print(f"  microphone: {describe_processing(processing)}")
    shedding = status.get("video_shedding")
    if shedding and shedding.get("level"):
        print(f"  video: shed to level {shedding['level']} of 3 (less video, the sound "
              f"kept): {shedding['why']}")
    # A device the kiosk goes without, or a fallback it makes do with (docs/media.md).
    for key, text in {**(status.get("media_notices") or {}),
                      **(status.get("media_errors") or {})}.items():
        print(f"  {key}: {text}")
    last = status.get("last_call")
    if last:
        print(f"  last call: {last['direction']} with {last['peer']}: {last['outcome']}"
              f" ({last['reason']}), {last['duration_s']} s")


def describe_processing(stats: dict[str, Any]) -> str:
    """The microphone's processing stage in one line (media/processing.py's stats)."""
    if stats["state"] != "processing":
        why = stats.get("error") or "pywebrtc-audio is not installed"
        return "unprocessed" + ("" if stats["state"] == "off" else f" ({why})")
    parts = []
    if stats["echo_cancellation"]:
        erle = stats.get("erle_db")
        measured = [f"delay hint {stats.get('delay_hint_ms')} ms"]
        if erle is not None:
            measured.insert(0, f"ERLE {erle} dB (estimated)")
        state = "active" if stats["echo_cancellation_active"] else "on, speaker silent"
        parts.append(f"echo cancellation {state} ({', '.join(measured)})")
    if stats["noise_suppression"]:
        parts.append("noise suppression")
    if stats["high_pass_filter"]:
        parts.append("high-pass filter")
    if stats["auto_gain"]:
        parts.append(f"auto gain ({stats.get('auto_gain_db'):+} dB)")
    return ", ".join(parts)


def print_calls(calls: list[dict[str, Any]], missed: bool = False) -> None:
    if not calls:
        print("no missed calls" if missed else "no calls yet")
        return
    for call in calls:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call["started_at"]))
        who = f"{call['peer_name']} ({call['peer_id']})" if call["peer_name"] \
            else str(call["peer_id"])
        arrow = "<-" if call["direction"] == "incoming" else "->"
        duration = f"{call['duration_s']:.0f} s" if call.get("duration_s") else "-"
        reason = f" ({call['reason']})" if call.get("reason") else ""
        print(f"{started}  {arrow} {who:<28} {call['call_type']:<5} {call['outcome']}{reason}"
              f"  {duration}")


# -- on its own: config and selftest ---------------------------------------------------------


def config_check(file: str | None, given: str | None, overrides: Sequence[str],
                 as_json: bool) -> int:
    try:
        config = load(file or given, overrides)
        read_turn_secrets(config)  # a TURN secret file that cannot be read is a config error
    except ConfigError as exc:
        if as_json:
            print(json.dumps({"ok": False, "errors": [
                {"file": i.source, "key": i.key, "message": i.message} for i in exc.issues]},
                indent=2))
        else:
            print(exc, file=sys.stderr)
            print(f"kioskctl: {len(exc.issues)} problem(s) found", file=sys.stderr)
        return 1
    where = config.path or "built-in defaults"
    print(json.dumps({"ok": True, "file": str(where)}) if as_json else f"{where}: ok")
    return 0


def config_show(given: str | None, overrides: Sequence[str], as_json: bool) -> int:
    try:
        config = load_as_daemon(given, overrides)
    except ConfigError as exc:
        return _config_error(exc)
    shown = config_as_dict(config, mask_secrets=True)
    if as_json:
        print(json.dumps(shown, indent=2))
        return 0
    for section, keys in shown.items():
        print(f"[{section}]")
        for key, value in keys.items():
            print(f"{key} = {json.dumps(value)}")
        print()
    return 0


def selftest(given: str | None, overrides: Sequence[str], as_json: bool) -> int:
    from .selftest import run_selftest, summary

    try:
        config = load_as_daemon(given, overrides)
    except ConfigError as exc:
        return _config_error(exc)
    logging.basicConfig(level=logging.ERROR)
    report = asyncio.run(run_selftest(config))
    print(json.dumps(report, indent=2) if as_json else summary(report))
    return 0 if report["ok"] else 1


def provision(boot: str, etc: str) -> int:
    from .provision import provision as take

    result = take(Path(boot), Path(etc))
    for problem in result.problems:
        print(f"kioskctl provision: {problem}", file=sys.stderr)
    if result.changed:
        print(f"provisioned from {boot}: " + ", ".join(
            what for what, done in (("settings", result.settings), ("token", result.token))
            if done))
    return 1 if result.problems else 0
