"""The prediction log at scale: the SQLite store against the full scans it replaced.

Run with `make bench-logs` (`python benchmarks/logs.py --sizes 10000 100000 1000000`). Per
size it writes a log in the service's format (two worker files, lines as the service logs
them: features, prediction, class probabilities, id, model md5, time, one day apart oldest to
newest over 30 days) and feedback for a tenth of the predictions, then measures, in one run:

- index: building the store from the files (what a fresh monitor runner does first);
- feedback check: `/feedback`'s id lookup, called in-process (`PredictionStore.knows`, the
  function the endpoint calls), for logged ids and for unknown ids (a miss catches up first);
  and the whole feedback write (lookup, fsynced append, index); the baseline row is the old
  full text scan of every file (`scan`, below);
- append: one logged record through the service's writer (`PredictionLogMonitor`), with and
  without the store's catch-up after it;
- drift and decay reads: the rows the monitor reads (`monitor.window_rows` of the newest) in a
  child process, its time and peak resident memory; the baseline is the old full read of the
  log and feedback into memory;
- forget of one id: the store finds the one file holding it; the baseline rewrote every file.

One markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mlgitops.monitor.settings import MonitorParams
from mlgitops.prediction_log import (
    PREDICTIONS_FOLDER,
    REQUIRED_KEYS,
    PredictionLogMonitor,
    append_feedback,
    feedback_path,
    not_of,
    parse_line,
    prediction_files,
    read_feedback,
    read_predictions,
    rewrite,
)
from mlgitops.prediction_store import PredictionStore, forget

MODEL_MD5 = "3" * 32
WORKERS = 2
LOOKUPS = 2_000
SCANS = 3
APPENDS = 500
FEATURES = {
    "Culmen Length (mm)": lambda r: round(r.uniform(32, 60), 1),
    "Culmen Depth (mm)": lambda r: round(r.uniform(13, 22), 1),
    "Flipper Length (mm)": lambda r: float(r.randint(170, 230)),
    "Body Mass (g)": lambda r: float(r.randint(2700, 6300)),
    "Island": lambda r: r.choice(["Biscoe", "Dream", "Torgersen"]),
    "Sex": lambda r: r.choice(["MALE", "FEMALE", None]),
    "Clutch Completion": lambda r: r.choice(["Yes", "No"]),
    "Delta 15 N (o/oo)": lambda r: round(r.uniform(7.6, 10.1), 5),
    "Delta 13 C (o/oo)": lambda r: round(r.uniform(-27.1, -23.8), 5),
}
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


def scan(log_dir: Path, prediction_id: str) -> bool:
    """The id check before the store: a text scan of every file, JSON-checked on a hit."""
    needle = f'"{prediction_id}"'
    for path in prediction_files(log_dir):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if needle in line:
                    record = parse_line(line, REQUIRED_KEYS)
                    if record is not None and record["prediction_id"] == prediction_id:
                        return True
    return False


def write_log(log_dir: Path, size: int, seed: int) -> list[str]:
    """`size` predictions over the worker files and feedback for a tenth; returns the ids."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    span = dt.timedelta(days=30) / size
    ids = []
    data = log_dir / PREDICTIONS_FOLDER / "data"
    data.mkdir(parents=True)
    handles = [open(data / f"data.{w}.log", "w", encoding="utf-8") for w in range(WORKERS)]  # noqa: SIM115
    feedback = feedback_path(log_dir)
    feedback.parent.mkdir(parents=True)
    with open(feedback, "w", encoding="utf-8") as labels:
        for i in range(size):
            record: dict[str, Any] = {name: make(rng) for name, make in FEATURES.items()}
            proba = [rng.random() for _ in CLASSES]
            total = sum(proba)
            record["prediction"] = CLASSES[proba.index(max(proba))]
            record.update(
                {
                    f"probability:{c}": round(p / total, 6)
                    for c, p in zip(CLASSES, proba, strict=True)
                }
            )
            prediction_id = uuid.UUID(int=rng.getrandbits(128)).hex
            when = (start + i * span).isoformat()
            record.update(prediction_id=prediction_id, model_md5=MODEL_MD5, timestamp=when)
            record.update(request_id=str(i), trace_id="0")
            handles[i % WORKERS].write(json.dumps(record) + "\n")
            ids.append(prediction_id)
            if rng.random() < 0.1:
                label = {"prediction_id": prediction_id, "label": rng.choice(CLASSES)}
                labels.write(json.dumps({**label, "timestamp": when}) + "\n")
    for handle in handles:
        handle.close()
    return ids


def store_megabytes(store: PredictionStore) -> float:
    """The store's size on disk, its write-ahead log included."""
    files = store.path.parent.glob(store.path.name + "*")
    return sum(path.stat().st_size for path in files) / 1e6


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(seconds)
    return (
        1000 * statistics.median(ordered),
        1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    )


def timed(call: Any, *args: Any) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def append_cost(log_dir: Path, store: PredictionStore, *, indexed: bool) -> list[float]:
    """Seconds per one-row record through the service's writer, with or without the store."""
    monitor = PredictionLogMonitor(PREDICTIONS_FOLDER, str(log_dir), worker=0)
    rng = random.Random(1)
    costs = []
    for _ in range(APPENDS):
        started = time.perf_counter()
        monitor.start_record()
        for name, make in FEATURES.items():
            monitor.log(make(rng), name, "feature", "categorical")
        monitor.log("Adelie", "prediction", "prediction", "categorical")
        monitor.log(uuid.uuid4().hex, "prediction_id", "prediction", "categorical")
        monitor.log(MODEL_MD5, "model_md5", "prediction", "categorical")
        monitor.stop_record()
        if indexed:
            store.catch_up([monitor.data_path])
        costs.append(time.perf_counter() - started)
    return costs


def child(mode: str, log_dir: Path) -> None:
    """Read what drift and decay read, print seconds and peak memory as JSON (a child run)."""
    started = time.perf_counter()
    if mode == "window":
        rows = MonitorParams().window_rows
        with PredictionStore(log_dir) as store:
            store.catch_up()
            drift = store.newest_predictions(MODEL_MD5, rows=rows)
            decay = store.newest_labelled(rows=rows)
        used = f"{drift.used} of {drift.available}; labelled {decay.used} of {decay.available}"
    else:
        predictions = read_predictions(log_dir).frame
        feedback = read_feedback(log_dir).frame
        used = f"{len(predictions)} of {len(predictions)}; feedback {len(feedback)}"
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": used}))


def run_child(mode: str, log_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--logs", str(log_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(size: int, work: Path, seed: int, *, baseline: bool) -> list[dict[str, Any]]:
    """Every figure at one log size."""
    log_dir = work / f"log-{size}"
    started = time.perf_counter()
    ids = write_log(log_dir, size, seed)
    print(f"{size:,}: wrote the log in {time.perf_counter() - started:.1f} s", flush=True)
    megabytes = sum(p.stat().st_size for p in log_dir.rglob("*.log")) / 1e6
    rows: list[dict[str, Any]] = []

    def row(what: str, value: str, note: str = "") -> None:
        rows.append({"size": size, "log_mb": megabytes, "what": what, "value": value, "note": note})

    with PredictionStore(log_dir) as store:
        index_s = timed(store.catch_up)
        row(
            "index the log from scratch",
            f"{index_s:.2f} s",
            f"{store_megabytes(store):.0f} MB store",
        )
        rng = random.Random(seed)
        known = [timed(store.knows, rng.choice(ids)) for _ in range(LOOKUPS)]
        unknown = [timed(store.knows, uuid.uuid4().hex) for _ in range(LOOKUPS // 10)]
        p50, p99 = percentiles(known)
        row(
            "feedback check, logged id (store)", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms", "in-process"
        )
        p50, p99 = percentiles(unknown)
        row(
            "feedback check, unknown id (store)",
            f"p50 {p50:.3f} ms, p99 {p99:.3f} ms",
            "catch-up on a miss",
        )

        def feedback(prediction_id: str) -> None:
            if store.knows(prediction_id):
                record = {
                    "prediction_id": prediction_id,
                    "label": "Adelie",
                    "timestamp": "2026-12-01T00:00:00+00:00",
                }
                append_feedback(log_dir, record)
                store.catch_up([feedback_path(log_dir)])

        whole = [timed(feedback, rng.choice(ids)) for _ in range(LOOKUPS // 10)]
        p50, p99 = percentiles(whole)
        row("feedback write: check + fsynced append + index", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms")
        if baseline:
            newest = [timed(scan, log_dir, ids[-1]) for _ in range(SCANS)]
            missing = [timed(scan, log_dir, "f" * 32) for _ in range(SCANS)]
            row(
                "BASELINE feedback check, full scan, newest id",
                f"p50 {1000 * statistics.median(newest):.1f} ms",
                f"{SCANS} runs",
            )
            row(
                "BASELINE feedback check, full scan, unknown id",
                f"p50 {1000 * statistics.median(missing):.1f} ms",
                f"{SCANS} runs",
            )
        plain = percentiles(append_cost(log_dir, store, indexed=False))[0]
        indexed = percentiles(append_cost(log_dir, store, indexed=True))[0]
        row("append one record, log only", f"p50 {plain:.3f} ms")
        row(
            "append one record, log + store",
            f"p50 {indexed:.3f} ms",
            f"store adds {indexed - plain:.3f} ms",
        )
    window = run_child("window", log_dir)
    row(
        "drift + decay read (window)",
        f"{window['seconds']:.2f} s, peak {window['peak_mb']:.0f} MB",
        window["rows"],
    )
    if baseline:
        full = run_child("full", log_dir)
        row(
            "BASELINE drift + decay read (whole log)",
            f"{full['seconds']:.2f} s, peak {full['peak_mb']:.0f} MB",
            full["rows"],
        )
    subject = ids[len(ids) // 2]
    started = time.perf_counter()
    done = forget(log_dir, [subject])
    row("forget one id (store)", f"{time.perf_counter() - started:.2f} s", done.describe())
    if baseline:
        other = ids[len(ids) // 3]
        started = time.perf_counter()
        removed = sum(
            len(rewrite(p, not_of({other})).removed)
            for p in [*prediction_files(log_dir), feedback_path(log_dir)]
        )
        row(
            "BASELINE forget one id (every file)",
            f"{time.perf_counter() - started:.2f} s",
            f"{removed} line(s) removed",
        )
    for path in sorted(log_dir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| predictions | log | measure | value | note |", "|---:|---:|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['log_mb']:.0f} MB | {r['what']} | {r['value']} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--no-baseline-above",
        type=int,
        default=1_000_000,
        help="skip the slow baselines above this size",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, help="where the logs are written (default: a temp dir)"
    )
    parser.add_argument("--child", choices=["window", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--logs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.logs)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-logs-", dir=args.work) as work:
        for size in args.sizes:
            rows += measure(size, Path(work), args.seed, baseline=size <= args.no_baseline_above)
            print(markdown([r for r in rows if r["size"] == size]), flush=True)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
