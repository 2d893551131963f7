"""The prediction store: the SQLite index agrees with the JSON-lines log it is derived from."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgitops.prediction_log import (
    PREDICTIONS_FOLDER,
    REQUIRED_KEYS,
    LogError,
    append_feedback,
    prediction_files,
    read_feedback,
    read_predictions,
    read_records,
)
from mlgitops.prediction_store import PredictionStore, forget, open_store, prune, store_path

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
MODELS = ("a" * 32, "b" * 32)
# Lines a damaged log holds: not JSON, JSON without the keys, a time that is not one.
CORRUPT = ("garbage", "{}", '{"prediction_id": "x", "model_md5": "m", "timestamp": "then"}')


def _record(rng: random.Random, index: int) -> dict:
    return {
        "Island": rng.choice(["Dream", "Biscoe", None]),
        "prediction": rng.choice(["A", "B"]),
        "prediction_id": f"{index:032x}",
        "model_md5": rng.choice(MODELS),
        # Naive times are local (BentoML writes those); aware ones in any zone.
        "timestamp": (
            (NOW - dt.timedelta(minutes=rng.randrange(10_000))).astimezone(
                dt.timezone(dt.timedelta(hours=rng.choice([-5, 0, 9])))
            )
        ).isoformat(),
    }


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def _log(tmp_path: Path, seed: int, files: int, rows: int, corrupt: int) -> list[dict]:
    """A log of `rows` records over `files` worker files, with corrupt and blank lines."""
    rng = random.Random(seed)
    records = [_record(rng, i) for i in range(rows)]
    by_file: dict[int, list[str]] = {}
    for record in records:
        by_file.setdefault(rng.randrange(files), []).append(json.dumps(record))
    for _ in range(corrupt):
        lines = by_file.setdefault(rng.randrange(files), [])
        lines.insert(rng.randrange(len(lines) + 1), rng.choice([*CORRUPT, ""]))
    for worker, lines in by_file.items():
        _write(tmp_path / PREDICTIONS_FOLDER / "data" / f"data.{worker}.log", lines)
    return records


def _generated(tmp_path_factory, log: tuple[int, int, int, int]) -> tuple[Path, list[dict]]:
    """A fresh folder holding the generated log `log` (seed, files, rows, corrupt lines)."""
    tmp_path = tmp_path_factory.mktemp("log")
    return tmp_path, _log(tmp_path, *log)


logs = st.tuples(st.integers(0, 2**32), st.integers(1, 4), st.integers(1, 120), st.integers(0, 10))


@settings(max_examples=30, deadline=None)
@given(logs)
def test_the_store_indexes_what_reading_the_log_finds(tmp_path_factory, log):
    # Given any log (several files, corrupt and blank lines, times in any zone), when the
    # store catches up, then it holds every record the JSON-lines reader finds, knows each id,
    # and reports the same files, counts and corrupt line numbers.
    tmp_path, records = _generated(tmp_path_factory, log)
    expected = read_predictions(tmp_path)
    with open_store(tmp_path) as store:
        assert store.counts()["predictions"] == len(expected.frame), store.counts()
        assert store.files_summary() == expected.summary(), "the store's file report differs"
        assert all(store.knows(r["prediction_id"]) for r in records), "a logged id is unknown"
        assert not store.knows("f" * 32), "an id never logged was found"
        counts = expected.frame["model_md5"].value_counts().to_dict()
        assert store.model_counts() == counts, store.model_counts()


@settings(max_examples=20, deadline=None)
@given(logs, st.integers(1, 8))
def test_catching_up_in_steps_equals_indexing_once(tmp_path_factory, log, steps):
    # Given a log appended in any number of steps with a catch-up after each, then the store
    # holds exactly what one reindex of the final files holds.
    seed, files, rows, corrupt = log
    tmp_path = tmp_path_factory.mktemp("log")
    rng = random.Random(seed)
    lines = [json.dumps(_record(rng, i)) for i in range(rows)]
    lines += [rng.choice(CORRUPT) for _ in range(corrupt)]
    rng.shuffle(lines)
    cuts = sorted(rng.sample(range(len(lines) + 1), k=min(steps, len(lines) + 1)))
    with PredictionStore(tmp_path) as store:
        for start, end in zip([0, *cuts], [*cuts, len(lines)], strict=True):
            path = tmp_path / PREDICTIONS_FOLDER / "data" / f"data.{start % files}.log"
            _write(path, lines[start:end])
            store.catch_up()
        stepwise = (store.counts(), store.files_summary(), store.model_counts())
        store.reindex()
        assert (store.counts(), store.files_summary(), store.model_counts()) == stepwise


def test_a_line_being_written_is_indexed_once_it_is_whole(tmp_path):
    # Given a file whose last line has no newline yet (a write in progress or cut by a crash),
    # then the store leaves it out until the rest of the line arrives.
    record = json.dumps(_record(random.Random(0), 1))
    path = tmp_path / PREDICTIONS_FOLDER / "data" / "data.0.log"
    path.parent.mkdir(parents=True)
    path.write_text(record[:20])
    with PredictionStore(tmp_path) as store:
        store.catch_up()
        assert store.counts()["predictions"] == 0, "half a line was indexed"
        with path.open("a") as handle:
            handle.write(record[20:] + "\n")
        assert store.knows(f"{1:032x}"), "the completed line was not indexed"
        assert store.files_summary()["corrupt_lines"] == 0, "the half line was counted corrupt"


def test_a_rewritten_or_removed_file_is_indexed_again(tmp_path):
    # Given an indexed file that another tool rewrote (a new inode) with fewer lines, and one
    # that was deleted, then the store drops the rows that left and keeps the rest.
    records = _log(tmp_path, seed=1, files=2, rows=40, corrupt=0)
    data = tmp_path / PREDICTIONS_FOLDER / "data"
    with PredictionStore(tmp_path) as store:
        store.catch_up()
        kept = [line for line in (data / "data.0.log").read_text().splitlines()[::2]]
        replacement = data / "new"
        replacement.write_text("".join(line + "\n" for line in kept))
        os.replace(replacement, data / "data.0.log")
        (data / "data.1.log").unlink()
        store.catch_up()
        assert store.counts()["predictions"] == len(kept), store.counts()
        ids = {json.loads(line)["prediction_id"] for line in kept}
        for record in records:
            known = store.knows(record["prediction_id"])
            assert known == (record["prediction_id"] in ids), record["prediction_id"]


@settings(max_examples=25, deadline=None)
@given(logs, st.integers(1, 200))
def test_the_window_is_the_newest_rows_of_the_model(tmp_path_factory, log, rows):
    # Given any log and window size, when the newest predictions of a model are read, then
    # they are that model's `rows` newest records (all of them when fewer), oldest first, and
    # the window states how many the log holds.
    tmp_path, _ = _generated(tmp_path_factory, log)
    frame = read_predictions(tmp_path).frame
    with open_store(tmp_path) as store:
        for md5 in MODELS:
            ours = frame[frame["model_md5"] == md5].sort_values("timestamp", kind="stable")
            window = store.newest_predictions(md5, rows=rows)
            assert window.available == len(ours), window.summary()
            assert window.used == min(rows, len(ours)), window.summary()
            if window.used:
                times = window.frame["timestamp"]
                assert times.is_monotonic_increasing, "the window is not oldest first"
                newest = ours["timestamp"].iloc[-window.used :]
                assert sorted(times) == sorted(newest), "the window is not the newest rows"
                assert set(window.frame["model_md5"]) == {md5}, "another model's rows"


@settings(max_examples=25, deadline=None)
@given(logs, st.integers(1, 60), st.integers(0, 2**32))
def test_the_labelled_window_joins_the_latest_feedback(tmp_path_factory, log, rows, fseed):
    # Given any log and any feedback (some ids labelled several times, some never, some ids
    # never logged), when the store joins them, then each labelled prediction appears once
    # with its latest label, the newest `rows` of them, and the count of all is stated.
    tmp_path, records = _generated(tmp_path_factory, log)
    count = log[2]
    rng = random.Random(fseed)
    latest: dict[str, tuple[dt.datetime, str]] = {}
    for _ in range(rng.randrange(2 * count)):
        target = rng.choice(records)["prediction_id"] if rng.random() < 0.9 else "e" * 32
        when = NOW + dt.timedelta(seconds=rng.randrange(1_000))
        label = rng.choice(["A", "B", "C"])
        append_feedback(tmp_path, {"prediction_id": target, "label": label, "timestamp": str(when)})
        if when >= latest.get(target, (when, ""))[0]:
            latest[target] = (when, label)
    logged = {r["prediction_id"]: r for r in records}
    expected = {i: label for i, (_, label) in latest.items() if i in logged}
    with open_store(tmp_path) as store:
        window = store.newest_labelled(rows=rows)
    assert window.available == len(expected), window.summary()
    assert window.used == min(rows, len(expected)), window.summary()
    if window.used:
        got = dict(zip(window.frame["prediction_id"], window.frame["label"], strict=True))
        assert len(got) == window.used, "a prediction appears twice"
        assert all(expected[i] == label for i, label in got.items()), "not the latest label"
        assert window.frame["timestamp"].is_monotonic_increasing, "not oldest first"


def test_forget_rewrites_only_the_files_holding_the_id(tmp_path):
    # Given a log over four files and feedback, when one id is forgotten, then only its file
    # and the feedback file are rewritten, the store no longer knows it, and the rest stays.
    records = _log(tmp_path, seed=3, files=4, rows=60, corrupt=0)
    subject = records[7]["prediction_id"]
    append_feedback(tmp_path, {"prediction_id": subject, "label": "A", "timestamp": str(NOW)})
    untouched = {p: p.stat().st_mtime_ns for p in (tmp_path / PREDICTIONS_FOLDER).rglob("*.log")}
    done = forget(tmp_path, [subject])
    assert done.records == 2, done.removed
    assert len(done.removed) == 2, done.describe()
    assert done.files_in_log == 5, done.describe()
    changed = [p for p, mtime in untouched.items() if p.stat().st_mtime_ns != mtime]
    assert len(changed) == 1, f"rewrote {changed}"
    with PredictionStore(tmp_path) as store:
        assert not store.knows(subject), "the forgotten id is still found"
        assert store.counts()["predictions"] == len(records) - 1, store.counts()
    assert read_feedback(tmp_path).frame.empty, "the feedback of the id was kept"


def test_prune_rewrites_only_files_with_old_records(tmp_path):
    # Given one file of recent records and one with an old record, when pruned, then only the
    # second is rewritten and the store forgets the old record.
    data = tmp_path / PREDICTIONS_FOLDER / "data"
    rng = random.Random(4)
    recent = [_record(rng, i) for i in range(5)]
    old = {**_record(rng, 99), "timestamp": (NOW - dt.timedelta(days=90)).isoformat()}
    _write(data / "data.0.log", [json.dumps(r) for r in recent[:3]])
    _write(data / "data.1.log", [json.dumps(r) for r in [*recent[3:], old]])
    done = prune(tmp_path, retention_days=30, now=NOW)
    assert done.removed == {str(data / "data.1.log"): 1}, done.removed
    with PredictionStore(tmp_path) as store:
        assert not store.knows(old["prediction_id"]), "the pruned record is still found"
        assert store.counts()["predictions"] == 5, store.counts()


def test_the_store_is_private_in_wal_mode_and_rebuildable(tmp_path):
    # Given a store, then it is readable by its owner only, runs in WAL mode, and a store
    # deleted outright is rebuilt from the log by the next catch-up.
    records = _log(tmp_path, seed=5, files=1, rows=10, corrupt=0)
    path = store_path(tmp_path)
    with open_store(tmp_path):
        owned = list(path.parent.glob(path.name + "*"))
        assert len(owned) == 3, f"expected the database, -wal and -shm, found {owned}"
        for file in owned:
            assert file.stat().st_mode & 0o077 == 0, f"{file.name}: {oct(file.stat().st_mode)}"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    with open_store(tmp_path) as store:
        assert all(store.knows(r["prediction_id"]) for r in records), "not rebuilt"


def test_no_log_is_a_clear_error(tmp_path):
    # Given a folder with no prediction log, then opening its store names what was expected.
    with pytest.raises(LogError, match=r"data\.<worker>\.log"):
        open_store(tmp_path)


@settings(max_examples=25, deadline=None)
@given(logs, st.integers(1, 5), st.integers(0, 2**32))
def test_after_forget_the_store_reads_the_right_lines(tmp_path_factory, log, erased, fseed):
    # Given any log and any few ids forgotten (the store moves the other rows to their new
    # offsets, or indexes the file again), then every row it points to is the right line, and
    # it holds exactly what a rebuild from the rewritten files holds.
    tmp_path, records = _generated(tmp_path_factory, log)
    count = log[2]
    subjects = {
        r["prediction_id"] for r in random.Random(fseed).sample(records, min(erased, count))
    }
    with open_store(tmp_path) as store:
        forget(tmp_path, subjects)
        expected = read_records(prediction_files(tmp_path), REQUIRED_KEYS).frame
        for md5 in MODELS:
            window = store.newest_predictions(md5, rows=count)
            ours = expected[expected["model_md5"] == md5] if len(expected) else expected
            got = sorted(window.frame.get("prediction_id", []))
            assert got == sorted(ours.get("prediction_id", [])), "rows point to wrong lines"
        followed = (store.counts(), store.files_summary(), store.model_counts())
        store.reindex()
        assert (store.counts(), store.files_summary(), store.model_counts()) == followed
        assert not any(store.knows(i) for i in subjects), "a forgotten id is still found"


def test_a_store_that_is_not_a_database_is_rebuilt(tmp_path):
    # Given a store file overwritten with other bytes, when it is opened, then it is rebuilt
    # from the log (it is derived data) rather than stopping the service or the monitor.
    records = _log(tmp_path, seed=7, files=1, rows=5, corrupt=0)
    store_path(tmp_path).write_bytes(b"not a database" * 100)
    with open_store(tmp_path) as store:
        assert all(store.knows(r["prediction_id"]) for r in records), "not rebuilt"


def test_a_store_of_another_version_is_rebuilt(tmp_path):
    # Given a store file left by another version of the layout, when it is opened, then it is
    # rebuilt from the log rather than misread.
    records = _log(tmp_path, seed=6, files=1, rows=5, corrupt=0)
    with sqlite3.connect(store_path(tmp_path)) as db:
        db.execute("CREATE TABLE predictions (prediction_id TEXT, timestamp TEXT)")
        db.execute("PRAGMA user_version = 1")
    with open_store(tmp_path) as store:
        assert all(store.knows(r["prediction_id"]) for r in records), "the old store was used"


def test_a_long_catch_up_commits_as_it_goes_and_misses_nothing(tmp_path, monkeypatch):
    # Given batches and commits far smaller than the log (as a whole log is against the real
    # sizes), when the store indexes it, then it holds what the reader finds, every id once.
    import mlgitops.prediction_store as module

    monkeypatch.setattr(module, "BATCH_ROWS", 3)
    monkeypatch.setattr(module, "COMMIT_ROWS", 6)
    records = _log(tmp_path, seed=8, files=2, rows=100, corrupt=7)
    expected = read_predictions(tmp_path)
    with open_store(tmp_path) as store:
        assert store.files_summary() == expected.summary(), "the store's file report differs"
        assert store.counts()["predictions"] == len(records), store.counts()
        assert all(store.holds(r["prediction_id"]) for r in records), "a record was skipped"
