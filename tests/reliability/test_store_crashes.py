"""The prediction store under crashes and concurrency: writer processes killed with SIGKILL
between the log append and the store insert, or mid-load, and several appending at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitops.prediction_log import read_feedback, read_predictions
from mlgitops.prediction_store import PredictionStore

# A writer as the service is one: the real monitor class appends a record, then the store
# catches up from the file. `pause` stops for good between the two writes of its last record
# (after saying so in `ready.<tag>`); `loop` writes until it is killed; `finish` exits after
# `records` records.
WRITER = r"""
import random, sys, time, uuid
from pathlib import Path
from mlgitops.prediction_log import PredictionLogMonitor, append_feedback
from mlgitops.prediction_store import PredictionStore

log_dir, mode, tag = Path(sys.argv[1]), sys.argv[3], sys.argv[6]
worker, records, seed = int(sys.argv[2]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
monitor = PredictionLogMonitor("mlgitops_predictions", str(log_dir), worker=worker)
store = PredictionStore(log_dir)
n = 0
while mode == "loop" or n < records:
    rows = rng.randint(1, 4)
    ids = [uuid.uuid4().hex for _ in range(rows)]
    monitor.start_record()
    monitor.log_batch([rng.random() for _ in ids], "x", "feature", "numerical")
    monitor.log_batch(["A"] * rows, "prediction", "prediction", "categorical")
    monitor.log_batch(ids, "prediction_id", "prediction", "categorical")
    monitor.log_batch(["m" * 32] * rows, "model_md5", "prediction", "categorical")
    monitor.stop_record()
    n += 1
    if mode == "pause" and n == records:
        (log_dir / f"ready.{tag}").write_text(",".join(ids))
        time.sleep(3600)
    store.catch_up([monitor.data_path])
    if rng.random() < 0.2:
        label = {"prediction_id": ids[0], "label": "A", "timestamp": "2026-11-30T12:00:00+00:00"}
        append_feedback(log_dir, label)
        store.catch_up([log_dir / "mlgitops_feedback" / "feedback.jsonl"])
"""


def _writer(
    log_dir: Path, worker: int, mode: str, records: int, seed: int, tag: str = "0"
) -> subprocess.Popen:
    args = [str(log_dir), str(worker), mode, str(records), str(seed), tag]
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], start_new_session=True)


def _wait(condition, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the writer exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _logged_ids(log_dir: Path) -> list[str]:
    return read_predictions(log_dir).frame["prediction_id"].tolist()


def test_a_writer_killed_between_the_log_and_the_store_loses_nothing(tmp_path, seed):
    # Given a writer killed with SIGKILL after its last record reached the log but before the
    # store indexed it, when /feedback's lookup asks for those ids, then each is found (the
    # miss catches up from the file offsets) and the store then agrees with the log.
    process = _writer(tmp_path, 0, "pause", 30, seed)
    ready = tmp_path / "ready.0"
    try:
        _wait(ready.exists, process, "record written before the store")
    finally:
        _kill(process)
    last = ready.read_text().split(",")
    with PredictionStore(tmp_path) as store:
        indexed = store.counts()["predictions"]
        logged = _logged_ids(tmp_path)
        assert indexed == len(logged) - len(last), "the store was not behind the log"
        missing = [i for i in logged if not store.knows(i)]
        assert not missing, f"{len(missing)} logged id(s) unknown after the crash"
        assert store.counts()["predictions"] == len(logged), store.counts()


@pytest.mark.slow
def test_writers_killed_mid_load_lose_nothing(tmp_path, seed):
    # Given writers killed with SIGKILL at random moments of a load (mid-append, mid-
    # transaction, anywhere), then every logged id is found and the store, caught up, holds
    # exactly the records and feedback the files hold.
    rng = random.Random(seed)
    for round_ in range(3):
        process = _writer(tmp_path, 0, "loop", 0, seed + round_)
        log = tmp_path / "mlgitops_predictions" / "data" / "data.0.log"
        _wait(log.exists, process, "log file")
        time.sleep(rng.uniform(0.2, 1.5))
        _kill(process)
    with PredictionStore(tmp_path) as store:
        logged = _logged_ids(tmp_path)
        missing = [i for i in logged if not store.knows(i)]
        assert not missing, f"{len(missing)} of {len(logged)} logged id(s) unknown"
        # A writer killed between a feedback append and its index leaves that line to the
        # next catch-up (the monitor's commands start with one).
        store.catch_up()
        counts = store.counts()
    assert counts["predictions"] == len(logged), counts
    assert counts["feedback"] == len(read_feedback(tmp_path).frame), counts


@pytest.mark.slow
def test_concurrent_writer_processes_index_every_record_once(tmp_path, seed):
    # Given four processes appending at once, two to each of two files and all to the
    # feedback file, each catching the store up after each append, then once they finish the
    # store holds every record exactly once without any further catch-up, and no line tore.
    processes = [_writer(tmp_path, i % 2, "finish", 150, seed + i, str(i)) for i in range(4)]
    try:
        codes = [process.wait(timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                _kill(process)
    assert codes == [0] * 4, f"writers exited with {codes}"
    logged = _logged_ids(tmp_path)
    assert len(set(logged)) == len(logged), "an id was logged twice"
    with PredictionStore(tmp_path) as store:
        counts = store.counts()
        assert counts["predictions"] == len(logged), (counts, len(logged))
        assert counts["feedback"] == len(read_feedback(tmp_path).frame), counts
        assert counts["corrupt_lines"] == 0, "concurrent appends tore a line"
        missing = [i for i in logged if not store.holds(i)]
    assert not missing, f"{len(missing)} of {len(logged)} id(s) not indexed by their writer"
