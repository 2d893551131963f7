"""The prediction store: an SQLite index of the prediction and feedback logs, beside them.

The JSON-lines files stay the durable record (what `monitor.yml` downloads from the log URL
and every external tool reads); the store is derived from them and can always be rebuilt
(`mlgitops monitor reindex`). It holds, per logged line, the prediction id, the file and
byte offset of the line, the time and the model md5, and per feedback line the id, the time
and the label, so that `/feedback`'s id check is an indexed lookup, the monitor reads a
bounded window of the newest rows, decay's join runs in SQL, and `forget`/`prune` rewrite
only the files that hold the records.

The `files` table records how far each file has been indexed (byte offset and inode). A
writer appends to its file first, then catches the store up from that offset; a process
killed between the two leaves lines the next catch-up indexes, and a lookup that misses
catches up before it answers, so nothing logged is ever reported unknown. A file whose
inode changed (rewritten by `forget`/`prune`) or that shrank is indexed again from its start.

SQLite runs in WAL mode with a busy timeout, so worker processes append concurrently (each
catch-up is one `BEGIN IMMEDIATE` transaction), and with `secure_delete`, so erased ids are
overwritten in the database file, not only unlinked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from mlgitops.prediction_log import (
    FEEDBACK_KEYS,
    REQUIRED_KEYS,
    LogError,
    Rewrite,
    feedback_path,
    not_of,
    older_than,
    parse_line,
    parse_timestamp,
    prediction_files,
    rewrite,
)

logger = logging.getLogger(__name__)

STORE_FILE = "mlgitops_store.sqlite3"
# Seconds a writer waits for another process's transaction before it fails.
BUSY_TIMEOUT_S = 30.0
# Rows inserted per statement while a file is indexed, so memory stays flat, and per
# transaction, so the write-ahead log does too.
BATCH_ROWS = 5_000
COMMIT_ROWS = 100_000
# Page cache per connection (KiB): the indexes of a large log stay mostly in memory.
CACHE_KIB = 65_536
# A rewrite removing more lines than this from a file has it indexed again (one pass)
# rather than its rows shifted (one statement per removed line).
FOLLOW_MAX_SPANS = 200
# Corrupt line numbers kept per file for the report (the count is exact).
CORRUPT_LINES_KEPT = 100

# Bumped with every change of the tables: a store of another version is rebuilt.
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('prediction', 'feedback')),
    inode INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    records INTEGER NOT NULL,
    corrupt INTEGER NOT NULL,
    corrupt_lines TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    file_id INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    prediction_id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    model_md5 TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS predictions_line ON predictions (file_id, offset);
CREATE INDEX IF NOT EXISTS predictions_id ON predictions (prediction_id);
CREATE INDEX IF NOT EXISTS predictions_model_time ON predictions (model_md5, time_us);
CREATE INDEX IF NOT EXISTS predictions_time ON predictions (time_us);
CREATE TABLE IF NOT EXISTS feedback (
    file_id INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    prediction_id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    label TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_line ON feedback (file_id, offset);
CREATE INDEX IF NOT EXISTS feedback_id_time ON feedback (prediction_id, time_us);
CREATE INDEX IF NOT EXISTS feedback_time ON feedback (time_us);
"""


def store_path(log_dir: Path) -> Path:
    """Where the store of the log under `log_dir` lives (beside the log folders)."""
    return Path(log_dir) / STORE_FILE


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def microseconds(value: dt.datetime) -> int:
    """An aware time as integer microseconds since the epoch: compact, ordered, exact."""
    return (value - EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """Rows read from the log through the store: the frame, and how many were available."""

    frame: pd.DataFrame
    available: int

    @property
    def used(self) -> int:
        """Rows in the frame."""
        return len(self.frame)

    def summary(self) -> dict[str, int]:
        """Rows used of rows available, for the monitor's reports."""
        return {"used": self.used, "available": self.available}


def window_text(window: dict[str, int] | None, noun: str) -> str:
    """`Window.summary()` as a clause of a report sentence ("" when there is none)."""
    if not window:
        return ""
    return (
        f" (rows used: the newest {window['used']} of {window['available']} {noun} "
        "available, monitor.window_rows)"
    )


def _row(kind: str, file_id: int, offset: int, record: dict[str, Any]) -> tuple[Any, ...]:
    when = microseconds(parse_timestamp(str(record["timestamp"])))
    if kind == "prediction":
        md5 = record["model_md5"]
        return (
            file_id,
            offset,
            str(record["prediction_id"]),
            when,
            None if md5 is None else str(md5),
        )
    return (file_id, offset, str(record["prediction_id"]), when, json.dumps(record["label"]))


class PredictionStore:
    """The store of one log folder; safe to share between threads of a process."""

    def __init__(self, log_dir: Path, *, path: Path | None = None) -> None:
        """Open (and create) the store of `log_dir`, at `path` (default: beside the log)."""
        self.log_dir = Path(log_dir)
        self.path = path or store_path(self.log_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError):
                raise  # locked, read-only, no space: not the file's fault
            # Not a database (or a damaged one): derived data, so it is built anew.
            logger.warning("%s is not a usable store (%s): rebuilding it", self.path, error)
            for leftover in self.path.parent.glob(self.path.name + "*"):
                leftover.unlink()
            self._db = self._open()
        # The ids are personal data's handle: the database and its WAL files are the owner's.
        for owned in self.path.parent.glob(self.path.name + "*"):
            with contextlib.suppress(PermissionError):
                os.chmod(owned, 0o600)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            # The mode is kept in the file; every other pragma is per connection.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # the log, not the store, is durable
            db.execute("PRAGMA secure_delete=ON")
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            db.execute("BEGIN IMMEDIATE")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                # Another version's layout: derived data, so dropped and rebuilt.
                tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                for (table,) in tables.fetchall():
                    db.execute(f'DROP TABLE "{table}"')
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> PredictionStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: two catch-ups never read the same offset.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.log_dir.resolve()).as_posix()

    def logged_files(self) -> list[tuple[Path, str]]:
        """Every prediction and feedback file of the log, each with its kind."""
        feedback = feedback_path(self.log_dir)
        files = [(p, "prediction") for p in prediction_files(self.log_dir)]
        return files + ([(feedback, "feedback")] if feedback.exists() else [])

    def catch_up(self, paths: Iterable[Path] | None = None) -> int:
        """Index the lines appended to the log files since the last catch-up.

        Args:
            paths: the files to catch up (default: every prediction and feedback file); the
                feedback file is indexed as feedback, any other as predictions.

        Returns:
            How many records were indexed.
        """
        if paths is None:
            files = self.logged_files()
        else:
            feedback = feedback_path(self.log_dir).resolve()
            files = [
                (Path(p), "feedback" if Path(p).resolve() == feedback else "prediction")
                for p in paths
            ]
        indexed = 0
        with self._lock, self._transaction():
            for path, kind in files:
                indexed += self._index_path(path, kind)
            if paths is None:
                self._drop_vanished({self._relative(p) for p, _ in files})
        return indexed

    def _drop_vanished(self, present: set[str]) -> None:
        for file_id, path in self._db.execute("SELECT file_id, path FROM files").fetchall():
            if path not in present:
                self._forget_file(file_id)
                self._db.execute("DELETE FROM files WHERE file_id = ?", (file_id,))

    def _forget_file(self, file_id: int) -> None:
        self._db.execute("DELETE FROM predictions WHERE file_id = ?", (file_id,))
        self._db.execute("DELETE FROM feedback WHERE file_id = ?", (file_id,))

    def _index_path(self, path: Path, kind: str) -> int:
        try:
            with open(path, "rb") as handle:
                return self._index_open_file(handle, self._relative(path), kind)
        except FileNotFoundError:  # removed since it was listed
            return 0

    def _index_open_file(self, handle: BinaryIO, relative: str, kind: str) -> int:
        stat = os.fstat(handle.fileno())
        row = self._db.execute(
            "SELECT file_id, inode, offset, lines, records, corrupt, corrupt_lines "
            "FROM files WHERE path = ?",
            (relative,),
        ).fetchone()
        if row is None:
            file_id = self._db.execute(
                "INSERT INTO files (path, kind, inode, offset, lines, records, corrupt, "
                "corrupt_lines) VALUES (?, ?, ?, 0, 0, 0, 0, '[]') RETURNING file_id",
                (relative, kind, stat.st_ino),
            ).fetchone()[0]
            offset = lines = records = corrupt = 0
            corrupt_lines: list[int] = []
        else:
            file_id, inode, offset, lines, records, corrupt, kept = row
            corrupt_lines = json.loads(kept)
            if inode != stat.st_ino or stat.st_size < offset:
                # Rewritten (forget, prune) or replaced: index it again from its start.
                self._forget_file(file_id)
                offset = lines = records = corrupt = 0
                corrupt_lines = []
        if stat.st_size == offset:
            return 0
        handle.seek(offset)
        required = REQUIRED_KEYS if kind == "prediction" else FEEDBACK_KEYS
        table = "predictions" if kind == "prediction" else "feedback"
        last = "model_md5" if kind == "prediction" else "label"
        insert = (
            f"INSERT OR REPLACE INTO {table} (file_id, offset, prediction_id, time_us, "
            f"{last}) VALUES (?, ?, ?, ?, ?)"
        )
        batch: list[tuple[Any, ...]] = []
        indexed = 0

        def save(inode: int, *progress: Any) -> None:
            *counts, kept = progress
            self._db.execute(
                "UPDATE files SET inode = ?, offset = ?, lines = ?, records = ?, corrupt = ?, "
                "corrupt_lines = ? WHERE file_id = ?",
                (inode, *counts, json.dumps(kept), file_id),
            )

        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # a line still being written (or cut by a crash): not yet
            lines += 1
            start, offset = offset, offset + len(raw)
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                continue
            record = parse_line(text, required)
            if record is None:
                corrupt += 1
                if len(corrupt_lines) < CORRUPT_LINES_KEPT:
                    corrupt_lines.append(lines)
                continue
            batch.append(_row(kind, file_id, start, record))
            if len(batch) >= BATCH_ROWS:
                self._db.executemany(insert, batch)
                indexed += len(batch)
                batch.clear()
                if indexed % COMMIT_ROWS < BATCH_ROWS:
                    # A long catch-up (a whole log) commits as it goes, offsets with the rows,
                    # so the write-ahead log stays small and an interruption keeps the work.
                    save(stat.st_ino, offset, lines, records + indexed, corrupt, corrupt_lines)
                    self._db.execute("COMMIT")
                    self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany(insert, batch)
        indexed += len(batch)
        save(stat.st_ino, offset, lines, records + indexed, corrupt, corrupt_lines)
        return indexed

    def follow_rewrite(self, path: Path, done: Rewrite) -> None:
        """Move the rows of a rewritten file to the lines' new offsets, dropping removed ones.

        Cheaper than indexing the file again: no line is read. When the store no longer
        follows the old file (a catch-up already indexed the new one), nothing is done; when
        the file has corrupt lines (their reported line numbers change) or many lines went,
        the file is indexed again instead.
        """
        relative = self._relative(path)
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT file_id, inode, offset, lines, records, kind, corrupt FROM files "
                "WHERE path = ?",
                (relative,),
            ).fetchone()
            if row is None or row[1] != done.old_inode:
                return  # not indexed yet, or already indexed from the new file
            file_id, _, indexed_to, lines, records, kind, corrupt = row
            table = "predictions" if kind == "prediction" else "feedback"
            spans = [(start, length) for start, length in done.removed if start < indexed_to]
            # With no corrupt line in the file, every removed line was a record (blank lines
            # are never removed); corrupt lines are reported by line number, which a removal
            # before them changes, so such a file is indexed again.
            if len(spans) > FOLLOW_MAX_SPANS or corrupt:
                self._forget_file(file_id)
                self._db.execute(
                    "UPDATE files SET offset = 0, lines = 0, records = 0, corrupt = 0, "
                    "corrupt_lines = '[]', inode = ? WHERE file_id = ?",
                    (done.new_inode, file_id),
                )
                self._index_path(path, kind)
                return
            for start, _ in spans:  # rows `forget` already erased are simply not there
                self._db.execute(
                    f"DELETE FROM {table} WHERE file_id = ? AND offset = ?", (file_id, start)
                )
            # Later spans first: each shift leaves the offsets before its span as they were.
            # Through negative values, so no shifted row meets one not shifted yet (the
            # (file, offset) index is unique).
            for start, length in sorted(spans, reverse=True):
                self._db.execute(
                    f"UPDATE {table} SET offset = -(offset - ?) WHERE file_id = ? AND offset > ?",
                    (length, file_id, start),
                )
                self._db.execute(
                    f"UPDATE {table} SET offset = -offset WHERE file_id = ? AND offset < 0",
                    (file_id,),
                )
            self._db.execute(
                "UPDATE files SET inode = ?, offset = ?, lines = ?, records = ? WHERE file_id = ?",
                (
                    done.new_inode,
                    indexed_to - sum(length for _, length in spans),
                    lines - len(spans),
                    records - len(spans),
                    file_id,
                ),
            )

    def reindex(self) -> int:
        """Rebuild the store from the log files; returns the records indexed."""
        with self._lock, self._transaction():
            for table in ("predictions", "feedback", "files"):
                self._db.execute(f"DELETE FROM {table}")
        indexed = self.catch_up()
        self.vacuum()
        return indexed

    def vacuum(self) -> None:
        """Fold the write-ahead log into the database, leaving no erased page behind."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def knows(self, prediction_id: str) -> bool:
        """Whether `prediction_id` was logged: an indexed lookup, after a catch-up on a miss.

        A miss catches up every file first, so a line appended by a writer that died before
        it indexed the line is found.
        """
        if self.holds(prediction_id):
            return True
        self.catch_up()
        return self.holds(prediction_id)

    def holds(self, prediction_id: str) -> bool:
        """Whether the store holds `prediction_id` now (no catch-up)."""
        with self._lock:
            found = self._db.execute(
                "SELECT 1 FROM predictions WHERE prediction_id = ? LIMIT 1", (prediction_id,)
            ).fetchone()
        return found is not None

    def counts(self) -> dict[str, int]:
        """Records indexed: predictions, feedback, and corrupt lines seen."""
        with self._lock:
            predictions = self._db.execute("SELECT count(*) FROM predictions").fetchone()[0]
            feedback = self._db.execute("SELECT count(*) FROM feedback").fetchone()[0]
            corrupt = self._db.execute("SELECT coalesce(sum(corrupt), 0) FROM files").fetchone()
        return {"predictions": predictions, "feedback": feedback, "corrupt_lines": corrupt[0]}

    def files_summary(self, kind: str = "prediction") -> dict[str, Any]:
        """What indexing the files found, in the shape of `LogRead.summary()`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, lines, records, corrupt, corrupt_lines FROM files WHERE kind = ? "
                "ORDER BY path",
                (kind,),
            ).fetchall()
        full = {path: str(self.log_dir / path) for path, *_ in rows}
        return {
            "files": len(rows),
            "records": sum(r[2] for r in rows),
            "empty_files": [full[p] for p, _, records, corrupt, _ in rows if not records + corrupt],
            "corrupt_lines": sum(r[3] for r in rows),
            "corrupt_by_file": {full[p]: json.loads(k) for p, _, _, c, k in rows if c},
        }

    def model_counts(self) -> dict[str, int]:
        """Logged predictions per model md5."""
        with self._lock:
            rows = self._db.execute(
                "SELECT model_md5, count(*) FROM predictions GROUP BY model_md5 "
                "ORDER BY count(*) DESC"
            ).fetchall()
        return {str(md5): int(n) for md5, n in rows}

    def _read_lines(self, located: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """The records at these (file, offset)s, each file read in offset order."""
        records: dict[tuple[str, int], dict[str, Any]] = {}
        by_file: dict[str, list[int]] = {}
        for path, offset in located:
            by_file.setdefault(path, []).append(offset)
        for path, offsets in by_file.items():
            source = str(self.log_dir / path)
            with contextlib.suppress(FileNotFoundError), open(source, "rb") as handle:
                for offset in sorted(offsets):
                    handle.seek(offset)
                    # Checked when it was indexed; a line changed since is skipped.
                    with contextlib.suppress(ValueError):
                        record = json.loads(handle.readline())
                        if isinstance(record, dict):
                            record["source"] = source
                            records[(path, offset)] = record
        return records

    def newest_predictions(self, model_md5: str, *, rows: int) -> Window:
        """The newest `rows` logged predictions of `model_md5`, read from the log files.

        Returns:
            A window: the records as a frame (UTC `timestamp`s, a `source` column), oldest
            first, and how many predictions of the model the log holds.
        """
        with self._lock:
            available = self._db.execute(
                "SELECT count(*) FROM predictions WHERE model_md5 = ?", (model_md5,)
            ).fetchone()[0]
            located = self._db.execute(
                "SELECT f.path, p.offset FROM predictions p JOIN files f USING (file_id) "
                "WHERE p.model_md5 = ? ORDER BY p.time_us DESC LIMIT ?",
                (model_md5, rows),
            ).fetchall()
        located = located[::-1]
        records = self._read_lines(located)
        rows_read = [records[key] for key in located if key in records]
        return Window(frame=_frame(rows_read), available=available)

    def newest_labelled(self, *, rows: int) -> Window:
        """The newest `rows` predictions that received feedback, each with its latest label.

        The join runs in SQL: the predictions newest first, each with its latest feedback;
        only the window's prediction lines are then read from the files.

        Returns:
            A window: the predictions with a `label` column, oldest first, and how many
            labelled predictions the log holds.
        """
        # Streamed newest first through the time index, each row's latest label looked up
        # through the feedback index: nothing is materialized, so memory stays flat.
        newest_first = """
            SELECT p.file_id, p.offset, p.prediction_id, (
                SELECT label FROM feedback fb WHERE fb.prediction_id = p.prediction_id
                ORDER BY fb.time_us DESC, fb.file_id DESC, fb.offset DESC LIMIT 1
            )
            FROM predictions p
            WHERE EXISTS (SELECT 1 FROM feedback fb WHERE fb.prediction_id = p.prediction_id)
            ORDER BY p.time_us DESC, p.file_id DESC, p.offset DESC
        """
        counted = """
            SELECT count(*) FROM (SELECT prediction_id FROM feedback GROUP BY prediction_id) g
            WHERE EXISTS (SELECT 1 FROM predictions p WHERE p.prediction_id = g.prediction_id)
        """
        located: list[tuple[str, int, str]] = []
        with self._lock:
            paths = dict(self._db.execute("SELECT file_id, path FROM files").fetchall())
            available = self._db.execute(counted).fetchone()[0]
            seen: set[str] = set()
            for file_id, offset, prediction_id, label in self._db.execute(newest_first):
                if len(located) >= rows:
                    break
                if prediction_id not in seen:  # an id logged twice: its latest line
                    seen.add(prediction_id)
                    located.append((paths[file_id], offset, label))
        located = located[::-1]
        records = self._read_lines([(path, offset) for path, offset, _ in located])
        labelled = [
            {**records[(path, offset)], "label": json.loads(label)}
            for path, offset, label in located
            if (path, offset) in records
        ]
        return Window(frame=_frame(labelled), available=available)

    def locate(self, prediction_ids: Iterable[str]) -> dict[str, set[str]]:
        """The files holding records of these ids: prediction and feedback files, by path."""
        ids = list(set(prediction_ids))
        found: dict[str, set[str]] = {}
        with self._lock:
            for table in ("predictions", "feedback"):
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for path, prediction_id in self._db.execute(
                        f"SELECT f.path, t.prediction_id FROM {table} t JOIN files f "
                        f"USING (file_id) WHERE t.prediction_id IN ({marks})",
                        chunk,
                    ):
                        found.setdefault(str(self.log_dir / path), set()).add(prediction_id)
        return found

    def files_with_corrupt_lines(self) -> list[Path]:
        """Log files holding lines that are not usable records."""
        with self._lock:
            rows = self._db.execute("SELECT path FROM files WHERE corrupt > 0").fetchall()
        return [self.log_dir / path for (path,) in rows]

    def files_older_than(self, cutoff: dt.datetime) -> list[Path]:
        """Log files holding a record from before `cutoff`."""
        when = microseconds(cutoff)
        with self._lock:
            rows = self._db.execute(
                "SELECT path FROM files WHERE file_id IN ("
                "SELECT DISTINCT file_id FROM predictions WHERE time_us < ? UNION "
                "SELECT DISTINCT file_id FROM feedback WHERE time_us < ?)",
                (when, when),
            ).fetchall()
        return [self.log_dir / path for (path,) in rows]

    def erase(self, prediction_ids: Iterable[str]) -> None:
        """Delete the rows of these ids (before their lines are rewritten away)."""
        ids = list(set(prediction_ids))
        with self._lock, self._transaction():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for table in ("predictions", "feedback"):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE prediction_id IN ({marks})",
                        chunk,
                    )


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    if len(frame):
        frame["timestamp"] = pd.to_datetime(
            [parse_timestamp(str(t)) for t in frame["timestamp"]], utc=True
        )
    return frame


def open_store(log_dir: Path) -> PredictionStore:
    """The store of `log_dir`, caught up with its files.

    Raises:
        LogError: when there is no prediction log file under `log_dir`.
    """
    if not prediction_files(log_dir):
        raise LogError(
            f"no prediction log under {log_dir}: expected JSON lines in "
            f"{Path(log_dir)}/mlgitops_predictions/data/data.<worker>.log "
            "(the service's MLGITOPS_PREDICTION_LOG_DIR)"
        )
    store = PredictionStore(log_dir)
    store.catch_up()
    return store


@dataclass(frozen=True)
class Rewritten:
    """What `forget` or `prune` did: lines removed per file rewritten, of files in the log."""

    removed: dict[str, int]
    files_in_log: int

    @property
    def records(self) -> int:
        """Lines removed over all files."""
        return sum(self.removed.values())

    def describe(self) -> str:
        """One line for the command's output."""
        return (
            f"{self.records} record(s) removed, {len(self.removed)} of {self.files_in_log} "
            "log file(s) rewritten"
        )


def _rewrite_files(
    store: PredictionStore, paths: Iterable[Path], keep: Any, files_in_log: int
) -> Rewritten:
    removed = {}
    for path in sorted(set(paths)):
        with contextlib.suppress(FileNotFoundError):
            done = rewrite(path, keep)
            if done.removed:
                removed[str(path)] = len(done.removed)
                store.follow_rewrite(path, done)
    store.vacuum()
    return Rewritten(removed=removed, files_in_log=files_in_log)


def forget(log_dir: Path, prediction_ids: Iterable[str]) -> Rewritten:
    """Erase every record of the given prediction ids from the prediction and feedback logs.

    The store names the files holding the ids; only those, and files with corrupt lines
    (which may mention an id), are rewritten. The ids' rows leave the store first, so no
    lookup finds an id while its lines are being erased.
    """
    ids = set(prediction_ids)
    with PredictionStore(log_dir) as store:
        store.catch_up()
        located = store.locate(ids)
        store.erase(ids)
        paths = [Path(p) for p in located] + store.files_with_corrupt_lines()
        return _rewrite_files(store, paths, not_of(ids), len(store.logged_files()))


def prune(log_dir: Path, *, retention_days: int, now: dt.datetime) -> Rewritten:
    """Delete records older than `retention_days` from the prediction and feedback logs.

    Only the files the store says hold an older record are rewritten; a line whose time
    cannot be read is kept.
    """
    cutoff = now - dt.timedelta(days=retention_days)
    with PredictionStore(log_dir) as store:
        store.catch_up()
        paths = store.files_older_than(cutoff)
        return _rewrite_files(store, paths, older_than(cutoff), len(store.logged_files()))
