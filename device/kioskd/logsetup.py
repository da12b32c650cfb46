"""Log lines: the journal's own priorities and no second timestamp under systemd; a timestamp
and the level on a terminal."""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities: the journal reads a "<N>" line prefix as the entry's level.
SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                   logging.CRITICAL: 2}
# aioice and aiortc are chatty at info: every candidate pair would be a line.
NOISY_LOGGERS = ("aioice", "aiortc", "engineio", "socketio")


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
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
