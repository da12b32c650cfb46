"""Log lines: journal priorities and no double timestamps under systemd, plain on a terminal."""

import logging

from kioskd.logsetup import JournalFormatter, setup_logging


def test_journal_lines_carry_the_level_as_priority_and_no_timestamp():
    formatter = JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("kioskd.app", logging.WARNING, __file__, 1,
                               "call %s: busy", ("c1",), None)
    assert formatter.format(record) == "<4>kioskd.app: call c1: busy"
    record.levelno = logging.ERROR
    assert formatter.format(record).startswith("<3>")


def test_terminal_lines_have_a_timestamp(monkeypatch, capsys):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        setup_logging("info")
        logging.getLogger("kioskd.test").info("call c2: idle -> ringing")
    finally:
        root.handlers = saved
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO kioskd.test: call c2: idle -> ringing")
    assert line[:4].isdigit()  # the year of the timestamp
