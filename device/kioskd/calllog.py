"""Call history in SQLite: one row per call, written as the call happens.

A row is inserted the moment a call begins (outcome "in progress") and completed when it ends,
so a call survives in the log even if kioskd is killed halfway through it; at the next start
`mark_interrupted` turns such rows into "interrupted".

Durability: every write is its own transaction, committed at once (autocommit). WAL with
synchronous=NORMAL means a crash or kill -9 of the process loses no committed row; only a power
cut can lose the last few commits. FULL would fsync at every commit, which on an SD card costs
tens of milliseconds per write and wears the card for no gain that matters for a call log.

`CallLog` is plain, blocking and thread-safe (kioskctl and tests use it directly).
`CallRecorder` feeds it from the app's callbacks without blocking the event loop; see there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .call.events import Call, Finished

log = logging.getLogger(__name__)

FILE_NAME = "calls.sqlite3"
IN_PROGRESS = "in progress"
INTERRUPTED = "interrupted"
INTERRUPTED_REASON = "kioskd stopped during the call"
MEDIA_KEYS = ("frames_received", "frames_sent", "packets_lost", "rtt_ms")
COLUMNS = ("id", "direction", "peer_id", "peer_name", "call_type", "started_at", "answered_at",
           "ended_at", "outcome", "reason", "duration_s", "setup_ms", *MEDIA_KEYS)

# MIGRATIONS[n] takes the schema from version n to n + 1; PRAGMA user_version is the version.
# `seq` orders the rows and names one row: call ids come from the web app and may repeat.
# IF NOT EXISTS: two processes opening a new file at once may both run the first migration.
MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS calls (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        direction TEXT NOT NULL,            -- incoming | outgoing
        peer_id TEXT NOT NULL,
        peer_name TEXT NOT NULL DEFAULT '',
        call_type TEXT NOT NULL,            -- video | audio
        started_at REAL NOT NULL,           -- Unix time, seconds
        answered_at REAL,                   -- media connected
        ended_at REAL,
        outcome TEXT NOT NULL,
        reason TEXT,
        duration_s REAL,                    -- answered -> ended; 0 if never answered
        setup_ms REAL,                      -- started -> answered
        frames_received INTEGER,
        frames_sent INTEGER,
        packets_lost INTEGER,
        rtt_ms REAL
    );
    CREATE INDEX IF NOT EXISTS calls_by_id ON calls (id);
    CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_at);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def default_path(configured: str = "", env: Mapping[str, str] | None = None) -> Path:
    """The configured path, else systemd's StateDirectory, else the user's state directory."""
    env = os.environ if env is None else env
    if configured:
        return Path(configured)
    if env.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / FILE_NAME
    if os.geteuid() == 0:
        return Path("/var/lib/kioskd") / FILE_NAME
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "kioskd" / FILE_NAME


class CallLog:
    """The call history file. Retention: at most `max_rows` rows, none older than
    `max_age_days` (0 switches a limit off), enforced at open and every `prune_every` calls."""

    def __init__(self, path: str | Path, *, max_rows: int = 10_000, max_age_days: float = 365,
                 prune_every: int = 100, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_rows, self.max_age_days, self.prune_every = max_rows, max_age_days, prune_every
        self._clock = clock
        self._inserts = 0
        self._lock = threading.Lock()  # one connection, shared by the recorder's thread and readers
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each write is committed when execute() returns.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=5.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self.prune(max_rows, max_age_days)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: call log schema {version} is newer than this "
                               f"kioskd understands ({SCHEMA_VERSION})")
        for number in range(version, SCHEMA_VERSION):
            # executescript commits first, so BEGIN/COMMIT live inside the script.
            self._db.executescript(f"BEGIN; {MIGRATIONS[number]}; "
                                   f"PRAGMA user_version = {number + 1}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: tuple | dict = ()) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount

    # -- writes --------------------------------------------------------------------------------

    def record_start(self, call: Call) -> None:
        """A call began (ringing, calling or answering at once)."""
        self._insert(call, IN_PROGRESS, None, None, None)

    def record_connected(self, call_id: str, at: float) -> None:
        """Media connected: the call was answered. Only the first connection counts."""
        self._write("""UPDATE calls SET answered_at = ?, setup_ms = (? - started_at) * 1000
                       WHERE seq = (SELECT max(seq) FROM calls WHERE id = ?)
                       AND answered_at IS NULL""", (at, at, call_id))

    def rename(self, old_id: str, new_id: str) -> None:
        """The peer re-offered under a new call id and the call went on under it."""
        self._write(f"""UPDATE calls SET id = ? WHERE seq = (SELECT max(seq) FROM calls
                        WHERE id = ? AND outcome = '{IN_PROGRESS}')""", (new_id, old_id))

    def record_end(self, call_id: str, outcome: str, reason: str | None, ended_at: float,
                   media: Mapping[str, Any] | None = None) -> bool:
        """Complete the call's row; False if no call with this id is in progress.

        `media` may hold MEDIA_KEYS (frames_received, frames_sent, packets_lost, rtt_ms);
        missing or None values are stored as NULL."""
        media = media or {}
        return self._write(f"""UPDATE calls SET outcome = :outcome, reason = :reason,
                ended_at = :ended_at,
                duration_s = CASE WHEN answered_at IS NULL THEN 0
                             ELSE max(0, :ended_at - answered_at) END,
                frames_received = :frames_received, frames_sent = :frames_sent,
                packets_lost = :packets_lost, rtt_ms = :rtt_ms
            WHERE seq = (SELECT max(seq) FROM calls WHERE id = :id AND outcome = '{IN_PROGRESS}')
            """, {"id": call_id, "outcome": outcome, "reason": reason, "ended_at": ended_at,
                  **{key: media.get(key) for key in MEDIA_KEYS}}) > 0

    def record_finished(self, call: Call, outcome: str, reason: str | None, ended_at: float,
                        media: Mapping[str, Any] | None = None) -> None:
        """A whole call in one row: one refused (busy, policy) without becoming the current call."""
        self._insert(call, outcome, reason, ended_at, media or {})

    def _insert(self, call: Call, outcome: str, reason: str | None, ended_at: float | None,
                media: Mapping[str, Any] | None) -> None:
        answered = call.connected_at
        row = {
            "id": call.id, "direction": call.direction, "peer_id": str(call.peer),
            "peer_name": call.peer_name, "call_type": call.call_type,
            "started_at": call.started_at, "answered_at": answered, "ended_at": ended_at,
            "outcome": outcome, "reason": reason,
            "duration_s": None if ended_at is None
            else max(0.0, ended_at - answered) if answered is not None else 0.0,
            "setup_ms": (answered - call.started_at) * 1000 if answered is not None else None,
            **{key: (media or {}).get(key) for key in MEDIA_KEYS},
        }
        self._write(f"INSERT INTO calls ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join(':' + c for c in COLUMNS)})", row)
        self._inserts += 1
        if self.prune_every and self._inserts % self.prune_every == 0:
            self.prune(self.max_rows, self.max_age_days)

    def mark_interrupted(self) -> int:
        """At start-up: calls still "in progress" were cut off by a crash, kill or power cut.
        Their end time is unknown and stays NULL. Returns how many there were."""
        count = self._write(f"UPDATE calls SET outcome = '{INTERRUPTED}', reason = ? "
                            f"WHERE outcome = '{IN_PROGRESS}'", (INTERRUPTED_REASON,))
        if count:
            log.warning("call log: %d call(s) were cut off when kioskd stopped", count)
        return count

    def prune(self, max_rows: int, max_age_days: float) -> int:
        """Drop rows beyond the newest `max_rows` and rows older than `max_age_days`
        (0: no limit). A call in progress is never dropped for its age. Returns rows dropped."""
        dropped = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if max_age_days > 0:
                    cutoff = self._clock() - max_age_days * 86400
                    dropped += self._db.execute(
                        f"DELETE FROM calls WHERE started_at < ? AND outcome != '{IN_PROGRESS}'",
                        (cutoff,)).rowcount
                if max_rows > 0:
                    dropped += self._db.execute(
                        "DELETE FROM calls WHERE seq <= (SELECT seq FROM calls "
                        "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (max_rows,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if dropped:
            log.info("call log: pruned %d old call(s)", dropped)
        return dropped

    # -- reads ---------------------------------------------------------------------------------

    def recent(self, limit: int = 20, missed_only: bool = False) -> list[dict[str, Any]]:
        """The newest calls first, as JSON-ready dicts with the COLUMNS as keys."""
        where = "WHERE outcome = 'missed'" if missed_only else ""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls {where} "
                                    "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [dict(row) for row in rows]


class CallRecorder:
    """Feeds a CallLog from the app's state-change and Finished callbacks.

    Why a thread: a write is a small commit, usually well under a millisecond, but when SQLite
    checkpoints the WAL it fsyncs, and an SD card can stall an fsync for 100 ms or more. On the
    event loop that would stall aiortc's RTP and the UI in the middle of a call. So writes go to
    one worker thread: one (not asyncio.to_thread's pool) so they run in the order they were
    made (start before connected before end), and fire-and-forget so the app's synchronous
    callbacks can call in. A write that fails is logged; the call goes on regardless.
    """

    def __init__(self, calllog: CallLog) -> None:
        self.log = calllog
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="calllog")
        self._current: Call | None = None  # the call whose row is "in progress"
        self._connected = False

    def state_changed(self, state: str, call: Call | None) -> None:
        """Call from the machine's on_change with the new state (a str enum) and its call."""
        if call is None or state in ("idle", "ending"):
            return
        current = self._current
        # The same call keeps its started_at, even when a re-offer gives it a new id.
        if current is None or call.started_at != current.started_at:
            self._connected = False
            self._submit(self.log.record_start, call)
        elif call.id != current.id:
            self._submit(self.log.rename, current.id, call.id)
        self._current = call
        self._note_connected(call)

    def finished(self, effect: Finished, media: Mapping[str, Any] | None = None) -> None:
        """Call for every Finished effect; `media` may hold MEDIA_KEYS."""
        call, current = effect.call, self._current
        if current is not None and call.id == current.id and call.started_at == current.started_at:
            self._note_connected(call)
            self._current = None
            self._submit(self.log.record_end, call.id, effect.outcome, effect.reason,
                         effect.ended_at, media)
        else:  # refused without ever being the current call (busy, not on the allow list)
            self._submit(self.log.record_finished, call, effect.outcome, effect.reason,
                         effect.ended_at, media)

    def _note_connected(self, call: Call) -> None:
        if call.connected_at is not None and not self._connected:
            self._connected = True
            self._submit(self.log.record_connected, call.id, call.connected_at)

    async def recent(self, limit: int = 20, missed_only: bool = False) -> list[dict[str, Any]]:
        """`CallLog.recent` behind the queued writes, off the event loop (control socket)."""
        return await asyncio.wrap_future(
            self._executor.submit(self.log.recent, limit, missed_only))

    async def aclose(self, now: float | None = None) -> None:
        """Finish queued writes and close. A call still going is logged as interrupted now,
        with its end time, rather than at the next start."""
        if self._current is not None:
            self._submit(self.log.record_end, self._current.id, INTERRUPTED, INTERRUPTED_REASON,
                         time.time() if now is None else now, None)
            self._current = None
        await asyncio.wrap_future(self._executor.submit(self.log.close))
        self._executor.shutdown(wait=False)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future = self._executor.submit(fn, *args)
        future.add_done_callback(_log_failure)
        return future


def _log_failure(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("call log write failed", exc_info=future.exception())


class CallLogService:
    """The daemon's call log as a component: opened at start (off the loop), closed at stop.

    Calls matter more than their history: a log that cannot be opened is reported and the
    kiosk answers calls anyway (`recorder` stays None).
    """

    name = "call log"

    def __init__(self, path: str, max_rows: int, max_age_days: float) -> None:
        self.path = default_path(path)
        self._max_rows, self._max_age_days = max_rows, max_age_days
        self.recorder: CallRecorder | None = None

    async def start(self) -> None:
        self.recorder = await asyncio.to_thread(self._open)

    def _open(self) -> CallRecorder | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            calllog = CallLog(self.path, max_rows=self._max_rows,
                              max_age_days=self._max_age_days)
        except Exception as exc:
            log.error("cannot open the call log %s (%s): calls are not recorded; set "
                      "calllog.path to a writable file", self.path, exc)
            return None
        interrupted = calllog.mark_interrupted()
        if interrupted:
            log.warning("%d call(s) were interrupted when kioskd last stopped", interrupted)
        log.info("call log at %s", self.path)
        return CallRecorder(calllog)

    async def stop(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            await recorder.aclose()
