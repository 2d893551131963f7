"""The prediction log and the feedback log: their format, the writer, reading, pruning, erasure.

The service writes one JSON object per line with `bentoml.monitor` under
`<log dir>/mlgitops_predictions/data/` (`data.<worker>.log`; files rotated by earlier
versions, `data.<worker>.log.<date>`, are read too), and ground truth posted to `/feedback`
as JSON lines in `<log dir>/mlgitops_feedback/feedback.jsonl`.

Writers append (`append_lines`: open, one write, close) under a shared lock of the folder;
`prune` and `forget` rewrite a file (a temporary file, fsync, rename) under the exclusive
lock. So a rewrite while the service runs loses no line appended meanwhile, and the next
append lands in the new file, never in the replaced one.

BentoML's default monitor writes through Python logging, one formatted log record per row,
into a file it keeps open. `PredictionLogMonitor` keeps BentoML's interface
(`bentoml.monitor(name, monitor_class=PredictionLogMonitor)`, `log_batch` per column) and the
same files and line format (`<log_path>/<name>/data/data.<worker>.log`, one JSON object per
row with a `timestamp`; the column schema in `schema/schema.<worker>.log`), but writes a
request's rows with one append (`append_lines`), optionally fsynced, so a log rewritten by
`monitor prune`/`forget` while the service runs keeps every line.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bentoml.monitoring import MonitorBase

from mlgitops.contract import NUMERIC_DTYPES, ContractParams

logger = logging.getLogger(__name__)

# The folder under the log dir: also the `bentoml.monitor` name the service logs under.
PREDICTIONS_FOLDER = "mlgitops_predictions"
# A classifier logs one column per class: this prefix and the class label.
PROBABILITY_PREFIX = "probability:"
FEEDBACK_FOLDER = "mlgitops_feedback"
FEEDBACK_FILE = "feedback.jsonl"
# Keys without which a line cannot be used: it is counted as corrupt.
REQUIRED_KEYS = ("prediction_id", "model_md5", "timestamp", "prediction")
FEEDBACK_KEYS = ("prediction_id", "label", "timestamp")
# In each log folder: the lock appends share and rewrites hold alone.
LOCK_FILE = ".lock"

_append_lock = threading.Lock()


class LogError(ValueError):
    """The prediction log cannot be used: missing, empty, or from another model."""


@dataclass
class FileStats:
    """What reading one log file found."""

    path: str
    records: int = 0
    corrupt_lines: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether the file held nothing: no record and no corrupt line."""
        return self.records == 0 and not self.corrupt_lines


@dataclass
class LogRead:
    """The records of a log folder and, per file, how many lines could not be used."""

    frame: pd.DataFrame
    files: list[FileStats]

    @property
    def corrupt_lines(self) -> int:
        """Lines that were not usable records, over all files."""
        return sum(len(f.corrupt_lines) for f in self.files)

    @property
    def empty_files(self) -> list[str]:
        """The files that held nothing."""
        return [f.path for f in self.files if f.empty]

    def summary(self) -> dict[str, Any]:
        """Counts for the monitor's report: files, records, empty files, corrupt lines."""
        return {
            "files": len(self.files),
            "records": len(self.frame),
            "empty_files": self.empty_files,
            "corrupt_lines": self.corrupt_lines,
            "corrupt_by_file": {f.path: f.corrupt_lines for f in self.files if f.corrupt_lines},
        }


def _prediction_data_dir(log_dir: Path) -> Path:
    """The folder the service's workers write their prediction-log files in."""
    return Path(log_dir) / PREDICTIONS_FOLDER / "data"


def prediction_files(log_dir: Path) -> list[Path]:
    """Every prediction-log file under `log_dir`, rotated ones included, in name order."""
    folder = _prediction_data_dir(log_dir)
    return sorted(p for p in folder.glob("*.log*") if p.is_file())


def feedback_path(log_dir: Path) -> Path:
    """Where ground truth posted to `/feedback` is appended."""
    return Path(log_dir) / FEEDBACK_FOLDER / FEEDBACK_FILE


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO timestamp as an aware datetime; a naive one is local time (BentoML writes those).

    Raises:
        ValueError: when `text` is not an ISO 8601 timestamp.
    """
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.astimezone()


def parse_line(line: str, required: tuple[str, ...]) -> dict[str, Any] | None:
    """One JSON-lines record, or None when the line is not JSON, lacks a key or has a bad time.

    A line without a `timestamp` is a record only when `required` does not name it (the
    rewrites read every line, keys or not).
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or any(key not in record for key in required):
        return None
    try:
        if "timestamp" in record:
            parse_timestamp(str(record["timestamp"]))
    except ValueError:
        return None
    return record


def read_records(paths: Iterable[Path], required: tuple[str, ...]) -> LogRead:
    """Read JSON-lines files; a line that is not a usable record is skipped and counted.

    Args:
        paths: the files to read.
        required: keys every record must have.

    Returns:
        The records as a frame (a `timestamp` column of UTC datetimes, a `source` column naming
        the file) and per-file counts of records and corrupt line numbers.
    """
    rows: list[dict[str, Any]] = []
    files = []
    for path in paths:
        stats = FileStats(path=str(path))
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                record = parse_line(line, required)
                if record is None:
                    stats.corrupt_lines.append(number)
                    continue
                record["source"] = str(path)
                rows.append(record)
                stats.records += 1
        if stats.corrupt_lines:
            logger.warning(
                "%s: skipped %d corrupt line(s) (lines %s)",
                path,
                len(stats.corrupt_lines),
                ", ".join(map(str, stats.corrupt_lines[:10])),
            )
        files.append(stats)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["timestamp"] = pd.to_datetime(
            [parse_timestamp(str(t)) for t in frame["timestamp"]], utc=True
        )
    return LogRead(frame=frame, files=files)


def read_predictions(log_dir: Path) -> LogRead:
    """The prediction log under `log_dir`.

    Raises:
        LogError: when there is no log file, or no file holds a usable record.
    """
    paths = prediction_files(log_dir)
    if not paths:
        raise LogError(
            f"no prediction log under {log_dir}: expected JSON lines in "
            f"{_prediction_data_dir(log_dir)}/data.<worker>.log "
            "(the service's MLGITOPS_PREDICTION_LOG_DIR)"
        )
    read = read_records(paths, REQUIRED_KEYS)
    if read.frame.empty:
        raise LogError(
            f"the prediction log under {log_dir} holds no usable record: {len(paths)} file(s), "
            f"{len(read.empty_files)} empty, {read.corrupt_lines} corrupt line(s)"
        )
    return read


def read_feedback(log_dir: Path) -> LogRead:
    """The feedback log under `log_dir` (an empty frame when nothing was posted yet)."""
    path = feedback_path(log_dir)
    return read_records([path] if path.exists() else [], FEEDBACK_KEYS)


@contextlib.contextmanager
def folder_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the folder's lock: shared by appends, exclusive for a rewrite (any process)."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def append_lines(path: Path, lines: list[str], *, fsync: bool) -> None:
    """Append JSON lines to `path` in one write, opening the file anew each time.

    Opening per call means a file that `prune` or `forget` replaced is written to, never the
    replaced one; O_APPEND with a single write keeps lines of concurrent workers whole.

    Args:
        path: the log file.
        lines: the JSON lines, without their newlines.
        fsync: wait until the lines are on disk (they survive a power loss, not only a crash
            of the process).
    """
    if not lines:
        return
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    with _append_lock, folder_lock(path.parent, exclusive=False):
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            if fsync:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)


def append_feedback(log_dir: Path, record: dict[str, Any]) -> Path:
    """Append one feedback record as a JSON line and fsync it before returning."""
    path = feedback_path(log_dir)
    append_lines(path, [json.dumps(record, ensure_ascii=False)], fsync=True)
    return path


@dataclass(frozen=True)
class Rewrite:
    """What a rewrite removed: each line's byte span in the old file, and both files' inodes."""

    removed: list[tuple[int, int]]
    old_inode: int
    new_inode: int


def rewrite(path: Path, keep: Callable[[str], bool]) -> Rewrite:
    """Rewrite `path` with only the lines `keep` accepts, under the folder's exclusive lock.

    The file is streamed, byte for byte, into a temporary file (fsynced, then renamed over
    it), so memory does not grow with the file; a file from which nothing is removed is left
    as it was.

    Returns:
        The (offset, length) of each removed line in the old file, and the inodes.
    """
    removed: list[tuple[int, int]] = []
    with folder_lock(path.parent, exclusive=True):
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with open(path, "rb") as source, os.fdopen(descriptor, "wb") as target:
                old_inode = new_inode = os.fstat(source.fileno()).st_ino
                offset = 0
                for raw in source:
                    line = raw.decode("utf-8", errors="replace")
                    if keep(line):
                        target.write(raw)
                    else:
                        removed.append((offset, len(raw)))
                    offset += len(raw)
                if removed:
                    target.flush()
                    os.fsync(target.fileno())
                    new_inode = os.fstat(target.fileno()).st_ino
            if removed:
                os.chmod(temporary, path.stat().st_mode)
                os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
    return Rewrite(removed=removed, old_inode=old_inode, new_inode=new_inode)


def older_than(cutoff: dt.datetime) -> Callable[[str], bool]:
    """What `prune` keeps: records from `cutoff` on, and every line it cannot date.

    Retention deletes old data, never data it cannot date (`monitor drift` reports such
    lines as corrupt).
    """

    def keep(line: str) -> bool:
        record = parse_line(line, ("timestamp",))
        return record is None or parse_timestamp(str(record["timestamp"])) >= cutoff

    return keep


def not_of(ids: set[str]) -> Callable[[str], bool]:
    """What `forget` keeps: every line but the records of `ids`.

    A line that is not valid JSON but mentions one of the ids is erased too: a damaged record
    of a subject is still that subject's record. A line mentioning no id is kept unparsed.
    """

    def keep(line: str) -> bool:
        if not any(i in line for i in ids):
            return True
        record = parse_line(line, ())
        if record is not None and "prediction_id" in record:
            return record["prediction_id"] not in ids
        return False

    return keep


# --- the writer behind `bentoml.monitor` ---------------------------------------------

ROLES = frozenset({"feature", "prediction", "target"})
DATA_TYPES = frozenset({"numerical", "categorical", "numerical_sequence"})
TIMESTAMP = "timestamp"

# The columns of the record being logged, per request (BentoML runs requests concurrently).
_RECORD: contextvars.ContextVar[dict[str, tuple[str, str, list[Any]]] | None] = (
    contextvars.ContextVar("mlgitops_prediction_record", default=None)
)


class MonitorUsageError(ValueError):
    """A record that cannot be written as logged: an unknown role or type, ragged columns."""


class PredictionLogMonitor(MonitorBase[Any]):
    """A `bentoml.monitor` class writing each record (all its rows) with one append."""

    def __init__(self, name: str, log_path: str, *, fsync: bool = False, worker: int = 0) -> None:
        """Write under `<log_path>/<name>/`, this worker's files, optionally fsynced."""
        super().__init__(name)
        self.folder = Path(log_path) / name
        self.fsync = fsync
        self.worker = worker
        self._schema_lock = threading.Lock()

    @property
    def data_path(self) -> Path:
        """This worker's prediction-log file."""
        return self.folder / "data" / f"data.{self.worker}.log"

    @property
    def schema_path(self) -> Path:
        """This worker's column-schema file."""
        return self.folder / "schema" / f"schema.{self.worker}.log"

    def start_record(self) -> None:
        """Begin a record (one request's rows) for this request's context."""
        _RECORD.set({})

    def log(self, data: Any, name: str, role: str, data_type: str) -> None:
        """Add one column holding a single row's value."""
        self.log_batch([data], name, role, data_type)

    def log_batch(self, data_batch: Any, name: str, role: str, data_type: str) -> None:
        """Add one column (a value per row) to the current record."""
        record = _RECORD.get()
        if record is None:
            raise MonitorUsageError(f"column {name!r} logged outside `with bentoml.monitor(...)`")
        if role not in ROLES:
            raise MonitorUsageError(
                f"column {name!r}: role must be one of {sorted(ROLES)}, got {role!r}"
            )
        if data_type not in DATA_TYPES:
            raise MonitorUsageError(
                f"column {name!r}: type must be one of {sorted(DATA_TYPES)}, got {data_type!r}"
            )
        if name in record or name == TIMESTAMP:
            raise MonitorUsageError(f"column {name!r} logged twice in one record (or reserved)")
        record[name] = (role, data_type, list(data_batch))

    def stop_record(self) -> None:
        """Write the record's rows with one append, and the schema on the first record.

        Raises:
            MonitorUsageError: when the columns have different lengths.
        """
        record = _RECORD.get()
        _RECORD.set(None)
        if not record:
            return
        lengths = {name: len(values) for name, (_, _, values) in record.items()}
        if len(set(lengths.values())) != 1:
            raise MonitorUsageError(f"every column needs one value per row, got lengths {lengths}")
        if self.columns_schema is None:
            with self._schema_lock:
                if self.columns_schema is None:
                    self.columns_schema = {
                        name: {"name": name, "role": role, "type": data_type}
                        for name, (role, data_type, _) in record.items()
                    }
                    self.export_schema(self.columns_schema)
        self.export_data({name: values for name, (_, _, values) in record.items()})

    def export_schema(self, columns_schema: dict[str, dict[str, str]]) -> None:
        """Append the column schema (with the timestamp column first) to the schema file."""
        columns = [{"name": TIMESTAMP, "role": "time", "type": "datetime"}]
        line = json.dumps({"columns": columns + list(columns_schema.values())})
        append_lines(self.schema_path, [line], fsync=self.fsync)

    def export_data(self, datas: Mapping[str, Iterable[Any]]) -> None:
        """Write the rows of one record: every column's i-th value, plus the time."""
        names = list(datas)
        timestamp = dt.datetime.now(dt.UTC).isoformat()
        lines = [
            json.dumps({**dict(zip(names, row, strict=True)), TIMESTAMP: timestamp})
            for row in zip(*datas.values(), strict=True)
        ]
        append_lines(self.data_path, lines, fsync=self.fsync)


def _json_values(series: pd.Series) -> list[Any]:
    values = series.astype(object)
    return values.mask(series.isna(), None).tolist()


def log_columns(
    frame: pd.DataFrame,
    *,
    contract: ContractParams,
    classes: np.ndarray | None,
    ids: list[str],
    outputs: list[Any],
    proba: np.ndarray | None,
    model_md5: str | None,
) -> list[tuple[str, str, str, list[Any]]]:
    """The prediction log's columns for a batch of records: name, role, type and values.

    Args:
        frame: the records' features (identifiers and personal or free-text columns were
            dropped when the request was validated).
        contract: the served model's contract.
        classes: a classifier's class labels; None for a regressor.
        ids: one prediction id per record.
        outputs: the predicted class or value per record.
        proba: a classifier's probabilities, records x classes.
        model_md5: the served model's md5, logged on every line.
    """
    columns = [
        (
            name,
            "feature",
            "numerical" if contract.columns[name].dtype in NUMERIC_DTYPES else "categorical",
            _json_values(frame[name]),
        )
        for name in contract.features
    ]
    kind = "numerical" if classes is None else "categorical"
    columns.append(("prediction", "prediction", kind, outputs))
    if proba is not None and classes is not None:
        columns += [
            (
                f"{PROBABILITY_PREFIX}{label}",
                "prediction",
                "numerical",
                proba[:, i].round(6).tolist(),
            )
            for i, label in enumerate(classes)
        ]
    columns.append(("prediction_id", "prediction", "categorical", ids))
    columns.append(("model_md5", "prediction", "categorical", [model_md5] * len(ids)))
    return columns
