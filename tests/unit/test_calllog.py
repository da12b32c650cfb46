"""The call log against real SQLite files in tmp_path, including a process killed mid-call."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from kioskd.call.events import Call, Finished
from kioskd.calllog import (
    COLUMNS,
    INTERRUPTED,
    INTERRUPTED_REASON,
    SCHEMA_VERSION,
    CallLog,
    CallRecorder,
    default_path,
)

T0 = 1_700_000_000.0


def call(id: str = "c1", peer: object = "alice", started_at: float = T0, **kw) -> Call:
    return Call(id=id, peer=peer, direction=kw.pop("direction", "incoming"),
                peer_name=kw.pop("peer_name", "Alice"), started_at=started_at, **kw)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "calls.sqlite3"


def test_a_call_is_written_as_it_happens(path: Path) -> None:
    log = CallLog(path)
    log.record_start(call())
    [row] = log.recent()
    assert row["outcome"] == "in progress" and row["ended_at"] is None
    log.record_connected("c1", T0 + 0.25)
    assert log.record_end("c1", "answered", "hangup", T0 + 60.25,
                          {"frames_received": 1440, "frames_sent": 1430, "packets_lost": 3,
                           "rtt_ms": 12.5})
    [row] = log.recent()
    assert set(row) == set(COLUMNS)
    assert row == {
        "id": "c1", "direction": "incoming", "peer_id": "alice", "peer_name": "Alice",
        "call_type": "video", "started_at": T0, "answered_at": T0 + 0.25,
        "ended_at": T0 + 60.25, "outcome": "answered", "reason": "hangup", "duration_s": 60.0,
        "setup_ms": 250.0, "frames_received": 1440, "frames_sent": 1430, "packets_lost": 3,
        "rtt_ms": 12.5,
    }
    assert not log.record_end("c1", "answered", "again", T0 + 99)  # nothing in progress now


def test_file_settings_and_schema_version(path: Path) -> None:
    CallLog(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        CallLog(path)


def test_unanswered_call_and_missing_media(path: Path) -> None:
    log = CallLog(path)
    log.record_start(call(peer=42, peer_name=""))
    log.record_end("c1", "missed", "timeout", T0 + 30)
    [row] = log.recent()
    assert row["peer_id"] == "42" and row["duration_s"] == 0 and row["setup_ms"] is None
    assert row["frames_received"] is None and row["rtt_ms"] is None


def test_refused_call_in_one_row(path: Path) -> None:
    log = CallLog(path)
    log.record_start(call("c1"))
    log.record_finished(call("c2", peer="bob", started_at=T0 + 5), "busy", "busy", T0 + 5)
    busy, current = log.recent()
    assert (busy["id"], busy["outcome"], busy["ended_at"], busy["duration_s"]) == \
        ("c2", "busy", T0 + 5, 0)
    assert current["outcome"] == "in progress"


def test_missed_filter(path: Path) -> None:
    log = CallLog(path)
    for i, outcome in enumerate(["answered", "missed", "declined", "missed", "busy"]):
        log.record_finished(call(f"c{i}", started_at=T0 + i), outcome, None, T0 + i)
    assert [r["id"] for r in log.recent(missed_only=True)] == ["c3", "c1"]
    assert [r["id"] for r in log.recent(limit=2)] == ["c4", "c3"]


def test_call_ids_may_repeat_and_the_newest_row_is_updated(path: Path) -> None:
    log = CallLog(path)
    log.record_finished(call("1"), "answered", "hangup", T0 + 10)
    log.record_start(call("1", started_at=T0 + 100))
    log.record_end("1", "declined", "declined", T0 + 101)
    newest, oldest = log.recent()
    assert (newest["outcome"], oldest["outcome"]) == ("declined", "answered")


def test_killed_mid_call_is_marked_interrupted_at_next_start(path: Path) -> None:
    # A real process writes the start row and is killed with SIGKILL: no cleanup code runs.
    script = textwrap.dedent(f"""
        import sys
        from kioskd.call.events import Call
        from kioskd.calllog import CallLog
        log = CallLog({str(path)!r})
        log.record_start(Call(id="doomed", peer="alice", direction="incoming",
                              started_at={T0}))
        log.record_connected("doomed", {T0 + 1})
        print("in call", flush=True)
        sys.stdin.read()  # wait, mid-call, until killed
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "in call\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdin.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    log = CallLog(path)
    [row] = log.recent()
    assert row["outcome"] == "in progress" and row["answered_at"] == T0 + 1  # committed at once
    assert log.mark_interrupted() == 1
    [row] = log.recent()
    assert (row["outcome"], row["reason"], row["ended_at"]) == \
        (INTERRUPTED, INTERRUPTED_REASON, None)
    assert log.mark_interrupted() == 0


def test_retention_by_rows_and_age_at_open_and_every_n_inserts(path: Path) -> None:
    now = [T0 + 100 * 86400]
    log = CallLog(path, max_rows=0, max_age_days=0, clock=lambda: now[0])
    for i in range(10):  # one call a day, the oldest 100 days ago
        log.record_finished(call(f"old{i}", started_at=T0 + i * 86400), "answered", None,
                            T0 + i * 86400 + 60)
    log.record_start(call("ancient-but-live", started_at=T0 - 86400))
    log.close()

    log = CallLog(path, max_rows=5, max_age_days=95, prune_every=3, clock=lambda: now[0])
    ids = [r["id"] for r in log.recent(limit=100)]
    # At open: older than 95 days (old0..old4) go; the call in progress stays despite its age.
    assert ids == ["ancient-but-live", "old9", "old8", "old7", "old6", "old5"][:5]
    for i in range(3):  # the third insert prunes back to 5 rows
        log.record_finished(call(f"new{i}", started_at=now[0]), "missed", None, now[0])
    assert [r["id"] for r in log.recent(limit=100)] == \
        ["new2", "new1", "new0", "ancient-but-live", "old9"]
    assert log.prune(max_rows=2, max_age_days=0) == 3
    assert len(log.recent(limit=100)) == 2


def test_readers_are_not_blocked_by_a_writer(path: Path) -> None:
    writer = CallLog(path, max_age_days=0)  # T0 is long ago
    reader = CallLog(path, max_age_days=0)
    writer.record_finished(call("c0"), "answered", None, T0)

    # An open write transaction on another connection: with WAL, reads neither wait nor fail.
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE calls SET outcome = 'missed'")
    assert [r["outcome"] for r in reader.recent()] == ["answered"]  # the committed state
    other.execute("ROLLBACK")
    other.close()

    # And one thread writing call after call while another reads throughout.
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(1, 201):
                writer.record_start(call(f"c{i}", started_at=T0 + i))
                writer.record_end(f"c{i}", "answered", None, T0 + i + 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    while not done.is_set():
        seen.append(len(reader.recent(limit=1000)))
    thread.join(timeout=30)
    assert not errors
    assert seen == sorted(seen)  # each read sees a consistent, growing history
    assert len(reader.recent(limit=1000)) == 201


def test_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_path("/srv/calls.db") == Path("/srv/calls.db")
    assert default_path("", {"STATE_DIRECTORY": "/var/lib/kioskd:/other"}) == \
        Path("/var/lib/kioskd/calls.sqlite3")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert default_path("", {"XDG_STATE_HOME": "/home/k/.state"}) == \
        Path("/home/k/.state/kioskd/calls.sqlite3")


async def test_recorder_follows_the_app_callbacks(path: Path) -> None:
    recorder = CallRecorder(CallLog(path, max_age_days=0))
    first = call("c1")
    recorder.state_changed("ringing", first)
    recorder.state_changed("connecting", first)
    connected = Call(**{**first.__dict__, "connected_at": T0 + 2})
    recorder.state_changed("connected", connected)
    # A caller refused while we are busy never becomes the current call.
    busy = call("c1", peer="bob", started_at=T0 + 3)  # even with a clashing call id
    recorder.finished(Finished(busy, "busy", "busy", T0 + 3))
    # The peer re-offers under a new call id; the call goes on under it.
    renamed = Call(**{**connected.__dict__, "id": "c1b"})
    recorder.state_changed("connecting", renamed)
    recorder.state_changed("connected", renamed)
    recorder.state_changed("ending", renamed)
    recorder.finished(Finished(renamed, "answered", "hangup", T0 + 12), {"frames_received": 7})
    recorder.state_changed("idle", renamed)

    later = call("c2", direction="outgoing", started_at=T0 + 20)
    recorder.state_changed("calling", later)
    rows = await recorder.recent()
    await recorder.aclose(now=T0 + 25)  # stopped mid-call: interrupted, with its end time

    assert [(r["id"], r["peer_id"], r["outcome"]) for r in rows] == [
        ("c2", "alice", "in progress"), ("c1", "bob", "busy"), ("c1b", "alice", "answered")]
    assert rows[2]["duration_s"] == 10 and rows[2]["setup_ms"] == 2000
    assert rows[2]["frames_received"] == 7
    [last] = CallLog(path, max_age_days=0).recent(limit=1)
    assert (last["id"], last["outcome"], last["ended_at"]) == ("c2", INTERRUPTED, T0 + 25)
