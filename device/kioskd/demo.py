"""The one-command demo: the reference relay with its caller page, and a kiosk on synthetic media.

    python -m kioskd.demo [--port 8080] [--host 127.0.0.1] [--display none|window|fullscreen]
                          [--set KEY=VALUE ...]

Tokens are made fresh in a private folder each run and printed with the address to open; the
folder (tokens, call log) is removed when the demo stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

KIOSK_USER = "kiosk"
VISITOR_USER = "visitor"


def _write_tokens(folder: Path) -> tuple[dict, str, Path]:
    kiosk_token, visitor_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    tokens = {
        kiosk_token: {"userId": KIOSK_USER, "username": "Demo kiosk"},
        visitor_token: {"userId": VISITOR_USER, "username": "Visitor"},
    }
    (folder / "tokens.json").write_text(json.dumps(tokens, indent=2))
    token_file = folder / "kiosk-token"
    token_file.write_text(kiosk_token + "\n")
    token_file.chmod(0o600)
    return tokens, visitor_token, token_file


def _default_display() -> str:
    return "window" if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") else "none"


async def _main(args: argparse.Namespace, folder: Path) -> int:
    from .config import ConfigError, load_config, read_token
    from .control import AnotherDaemon
    from .daemon import run_daemon
    from .logsetup import setup_logging
    from .relay.server import running_relay

    tokens, visitor_token, token_file = _write_tokens(folder)
    try:
        relay_cm = running_relay(tokens, host=args.host, port=args.port)
        relay = await relay_cm.__aenter__()
    except OSError as exc:
        print(f"demo: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
              f"try --port with another number", file=sys.stderr)
        return 1
    try:
        try:
            overrides = [
                "kiosk.name=Demo kiosk",
                f"signaling.url={relay.url}", f"signaling.token_file={token_file}",
                f"calllog.path={folder / 'calls.sqlite3'}",
                f"display.mode={args.display or _default_display()}", *args.overrides]
            config = load_config(args.config, overrides)
            token = read_token(config)
        except ConfigError as exc:
            print(f"demo: configuration error:\n{exc}", file=sys.stderr)
            return 2
        setup_logging(config.log.level)
        page = f"{relay.url}/?token={visitor_token}&call={KIOSK_USER}"
        print(f"""
kioskd demo is running: relay {relay.url}, kiosk "{config.kiosk.name}" (user id "{KIOSK_USER}"),
display {config.display.mode}, answer mode {config.answer.mode}.

  Call the kiosk: open this address in Chrome, Chromium or Firefox on this machine,
  allow camera and microphone, and press "Video call":

      {page}

  (or sign in by hand with token {visitor_token} and call user id "{KIOSK_USER}")
  The kiosk calls you: .venv/bin/kioskctl call {VISITOR_USER}
  Kiosk status:        .venv/bin/kioskctl status
  Call history:        .venv/bin/kioskctl calls
  Stop:                Ctrl-C
""", flush=True)
        try:
            await run_daemon(config, token, overrides)
        except AnotherDaemon as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
    finally:
        await relay_cm.__aexit__(None, None, None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kioskd.demo",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address for the relay and page (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="relay port (default 8080)")
    parser.add_argument("--display", choices=("none", "window", "fullscreen"),
                        help="kiosk screen (default: a window when a display exists)")
    parser.add_argument("--config", help="a kioskd config file to start from")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a kiosk config key")
    args = parser.parse_args(argv)
    # The tokens, the call log: this run's only, gone when it stops.
    with tempfile.TemporaryDirectory(prefix="kioskd-demo-") as folder:
        try:
            return asyncio.run(_main(args, Path(folder)))
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
