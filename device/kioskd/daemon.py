"""Running `kioskd`: load the config and the token, set up logging and signals, run the app.

SIGINT and SIGTERM stop the daemon (a call in progress is hung up first), SIGHUP reloads the
config. Exit codes: 0 stopped, 1 could not start (another kioskd runs), 2 bad configuration.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Mapping, Sequence

from .config import Config, ConfigError, load_config, read_token, read_turn_secrets
from .control import AnotherDaemon
from .logsetup import setup_logging

log = logging.getLogger("kioskd")


async def run_daemon(config: Config, token: str, overrides: Sequence[str] = (),
                     turn_secrets: Mapping[str, str] | None = None) -> None:
    from .app import KioskApp

    app = KioskApp(config, token, overrides, turn_secrets)
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()

    def stop() -> None:
        # Once: a second Ctrl-C must not cut short the hang-up and the call log's closing.
        if not main.cancelling():
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    log.info("kioskd %r starting: answer mode %s, signaling %s",
             config.kiosk.name, config.answer.mode, config.signaling.url)
    try:
        await app.run()
    except asyncio.CancelledError:
        log.info("stopped")


def main(config_path: str | None, overrides: Sequence[str]) -> int:
    try:
        config = load_config(config_path, overrides)
        token = read_token(config)
        turn_secrets = read_turn_secrets(config)
    except ConfigError as exc:
        print(f"kioskd: configuration error:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(config.log.level)
    try:
        asyncio.run(run_daemon(config, token, overrides, turn_secrets))
    except AnotherDaemon as exc:
        print(f"kioskd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
