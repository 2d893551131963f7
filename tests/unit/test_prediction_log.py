"""The prediction log's writer behind `bentoml.monitor`: lines, schema, misuse, rewrites."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import bentoml
import pytest

from mlgitops.prediction_log import (
    MonitorUsageError,
    PredictionLogMonitor,
    prediction_files,
    read_predictions,
)
from mlgitops.prediction_store import forget

NAME = "mlgitops_predictions"


def log_record(monitor: PredictionLogMonitor, rows: int, *, start: int = 0) -> list[str]:
    """Log one record of `rows` rows, as the service does; returns the prediction ids."""
    ids = [f"{i:032x}" for i in range(start, start + rows)]
    monitor.start_record()
    monitor.log_batch([float(i) for i in range(rows)], "Body Mass (g)", "feature", "numerical")
    monitor.log_batch(["Adelie"] * rows, "prediction", "prediction", "categorical")
    monitor.log_batch(ids, "prediction_id", "prediction", "categorical")
    monitor.log_batch(["f" * 32] * rows, "model_md5", "prediction", "categorical")
    monitor.stop_record()
    return ids


def test_each_row_is_one_json_line_with_its_columns_and_time(tmp_path):
    # Given a record of three rows, when written, then the data file has three JSON lines,
    # each with every column's value for its row and an aware timestamp, and the schema is
    # written once.
    monitor = PredictionLogMonitor(NAME, str(tmp_path), worker=2)
    ids = log_record(monitor, 3)
    log_record(monitor, 1, start=3)
    lines = (tmp_path / NAME / "data" / "data.2.log").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["prediction_id"] for r in rows[:3]] == ids, rows
    assert [r["Body Mass (g)"] for r in rows[:3]] == [0.0, 1.0, 2.0], rows
    assert all(dt.datetime.fromisoformat(r["timestamp"]).tzinfo for r in rows), rows
    schema = (tmp_path / NAME / "schema" / "schema.2.log").read_text().splitlines()
    assert len(schema) == 1, f"schema written {len(schema)} times"
    names = [c["name"] for c in json.loads(schema[0])["columns"]]
    assert names == ["timestamp", "Body Mass (g)", "prediction", "prediction_id", "model_md5"]


def test_the_monitor_reads_back_as_the_prediction_log(tmp_path):
    # Given records written by the monitor, when the monitoring reads the log folder, then
    # every row is a usable record and nothing is counted corrupt.
    monitor = PredictionLogMonitor(NAME, str(tmp_path))
    log_record(monitor, 5)
    read = read_predictions(tmp_path)
    assert len(read.frame) == 5, read.frame
    assert read.corrupt_lines == 0


def test_it_is_used_through_bentoml_monitor(tmp_path):
    # Given `bentoml.monitor` with this class (a fresh name: BentoML keeps one monitor per
    # name per process), when a record is logged, then its line lands in the log folder.
    name = f"test_{uuid.uuid4().hex}"
    options = {"log_path": str(tmp_path), "fsync": True}
    with bentoml.monitor(name, monitor_class=PredictionLogMonitor, monitor_options=options) as m:
        m.log_batch([1.0, 2.0], "x", "feature", "numerical")
    lines = (tmp_path / name / "data" / "data.0.log").read_text().splitlines()
    assert [json.loads(line)["x"] for line in lines] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("role", "data_type", "message"),
    [
        ("label", "numerical", "role must be one of"),
        ("feature", "text", "type must be one of"),
    ],
)
def test_unknown_role_or_type_is_refused(tmp_path, role, data_type, message):
    # Given a column with a role or type the monitoring does not know, then it is refused
    # with the allowed values, instead of a log nothing downstream can read.
    monitor = PredictionLogMonitor(NAME, str(tmp_path))
    monitor.start_record()
    with pytest.raises(MonitorUsageError, match=message):
        monitor.log_batch([1], "x", role, data_type)


def test_ragged_columns_are_refused_and_nothing_is_written(tmp_path):
    # Given columns of different lengths, when the record ends, then it is refused, naming
    # the lengths, and no line is written.
    monitor = PredictionLogMonitor(NAME, str(tmp_path))
    monitor.start_record()
    monitor.log_batch([1, 2], "x", "feature", "numerical")
    monitor.log_batch([1], "prediction", "prediction", "numerical")
    with pytest.raises(MonitorUsageError, match="one value per row"):
        monitor.stop_record()
    assert not prediction_files(tmp_path), "a refused record was written"


def test_records_after_a_forget_land_in_the_rewritten_file(tmp_path):
    # Given a log that `monitor forget` rewrites (a new file renamed over the old one) while
    # the service keeps writing, when the next record is written, then it is in the file the
    # monitoring reads. (A writer that kept the old file open lost every later line.)
    monitor = PredictionLogMonitor(NAME, str(tmp_path))
    erased = log_record(monitor, 2)
    assert forget(tmp_path, erased[:1]).records, "forget removed nothing"
    kept = log_record(monitor, 2, start=10)
    ids = set(read_predictions(tmp_path).frame["prediction_id"])
    assert ids == {erased[1], *kept}, f"log holds {sorted(ids)}"


def test_appends_during_rewrites_are_never_lost(tmp_path):
    # Given a writer appending records while another thread keeps rewriting the log, then
    # every record written is in the log afterwards (rewrites hold the folder's lock).
    monitor = PredictionLogMonitor(NAME, str(tmp_path))
    log_record(monitor, 1, start=10_000)
    stop = threading.Event()

    def rewrite_until_stopped() -> None:
        while not stop.is_set():
            forget(tmp_path, ["f" * 32])  # matches nothing, rewrites nothing...
            forget(tmp_path, [f"{10_000:032x}"])  # ...then erases the first record

    rewriter = threading.Thread(target=rewrite_until_stopped)
    rewriter.start()
    try:
        written = [i for n in range(500) for i in log_record(monitor, 2, start=2 * n)]
    finally:
        stop.set()
        rewriter.join()
    logged = set(read_predictions(tmp_path).frame["prediction_id"])
    missing = set(written) - logged
    assert not missing, f"{len(missing)} of {len(written)} records lost"
