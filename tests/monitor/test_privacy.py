"""Retention pruning and erasure of one subject's records from the prediction and feedback logs."""

from __future__ import annotations

import datetime as dt
import json

from prediction_logs import log_record, write_log

from mlgitops.cli import main
from mlgitops.prediction_log import append_feedback, feedback_path, read_predictions
from mlgitops.prediction_store import forget, prune

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def _lines(path):
    return path.read_text().splitlines()


def test_prune_drops_only_records_older_than_retention(tmp_path):
    # Given predictions and feedback aged 1, 29 and 31 days, when pruned with 30 days'
    # retention, then only the 31-day-old ones are gone, and an undatable line is kept.
    ages = [1, 29, 31]
    records = [log_record({}, "x", when=NOW - dt.timedelta(days=d)) for d in ages]
    log = write_log(tmp_path, records)
    with log.open("a") as handle:
        handle.write("corrupt line\n")
    for record, age in zip(records, ages, strict=True):
        append_feedback(
            tmp_path,
            {
                "prediction_id": record["prediction_id"],
                "label": "x",
                "timestamp": (NOW - dt.timedelta(days=age)).isoformat(),
            },
        )
    done = prune(tmp_path, retention_days=30, now=NOW)
    assert done.records == 2, f"removed {done.removed}"
    assert len(done.removed) == 2, f"rewrote {sorted(done.removed)}, not the two logs"
    kept = [json.loads(line)["prediction_id"] for line in _lines(log) if line.startswith("{")]
    assert kept == [r["prediction_id"] for r in records[:2]], "wrong predictions kept"
    assert "corrupt line" in _lines(log), "an undatable line was deleted"
    assert len(_lines(feedback_path(tmp_path))) == 2, "old feedback was kept"


def test_forget_erases_every_record_of_the_id_and_nothing_else(tmp_path):
    # Given one subject's prediction in two rotated files, a damaged line and feedback, when
    # it is forgotten, then no file mentions its id (the store's database and write-ahead
    # log included: secure_delete) and the other records are untouched.
    subject = "a" * 32
    other = log_record({}, "y")
    write_log(tmp_path, [log_record({}, "x", prediction_id=subject), other])
    rotated = write_log(tmp_path, [log_record({}, "x", prediction_id=subject)], "data.0.log.1")
    with rotated.open("a") as handle:
        handle.write(f'{{"prediction_id": "{subject}", "trunc\n')
    append_feedback(
        tmp_path, {"prediction_id": subject, "label": "x", "timestamp": NOW.isoformat()}
    )
    done = forget(tmp_path, [subject])
    assert done.records == 4, f"removed {done.removed}"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert subject.encode() not in path.read_bytes(), f"{path} still holds the subject"
    remaining = read_predictions(tmp_path).frame["prediction_id"].tolist()
    assert remaining == [other["prediction_id"]], f"other records changed: {remaining}"


def test_forget_and_prune_commands(tmp_path, capsys):
    # Given a log, when `mlgitops monitor forget --id` and `prune` run, then they report what
    # they removed and exit 0.
    record = log_record({}, "x")
    write_log(tmp_path, [record, log_record({}, "x", when=NOW - dt.timedelta(days=400))])
    assert (
        main(["monitor", "forget", "--logs", str(tmp_path), "--id", record["prediction_id"]]) == 0
    )
    out = capsys.readouterr().out
    assert "1 record(s) removed, 1 of 1 log file(s) rewritten" in out, f"forget said {out!r}"
    assert main(["monitor", "prune", "--logs", str(tmp_path)]) == 0, "prune failed"
    out = capsys.readouterr().out
    assert "1 record(s) removed, 1 of 1 log file(s) rewritten" in out, f"prune said {out!r}"
