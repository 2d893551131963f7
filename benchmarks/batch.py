"""Batch scoring benchmark: `mlgitops score` against a plain chunked pandas loop, same run.

Run with `make bench-batch` (after `make repro`: it scores with the model dvc.lock pins). For
each size, synthetic rows shaped like the contract are written as a CSV once, then scored by:

- the baseline: `pd.read_csv(chunksize=...)`, typing by the contract, `predict_proba`, and the
  predictions written as Parquet, in one process (no checks, no quarantine);
- `mlgitops score` embedded (Dask's threaded scheduler);
- `mlgitops score` on a local Dask cluster of 1 and of 2 worker processes (one thread each).

Each measurement runs in a process of its own, so its peak memory (the largest resident set
of that process and of the worker processes it started) is its own. Every run's predictions
are compared with the baseline's, row by row; the benchmark exits 1 when any differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlgitops.contract import NUMERIC_DTYPES
from mlgitops.params import load_params
from mlgitops.scoring.batch import SCORED_DIR, score
from mlgitops.scoring.model import load_pinned_model
from pipeline import synthetic_table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (100_000, 1_000_000)
BASELINE_CHUNK_ROWS = 100_000
MODES = ("baseline", "embedded", "cluster-1", "cluster-2")
SEED = 20261202


def write_input(path: Path, rows: int) -> None:
    """Synthetic feature rows as a CSV, written in slices to keep this process small."""
    contract = load_params(ROOT / "params.yaml").contract
    step = 500_000
    for start in range(0, rows, step):
        table = synthetic_table(contract, min(step, rows - start), SEED + start)
        table = table.loc[:, list(contract.features)].round(4)
        table.to_csv(path, mode="a", header=start == 0, index=False, lineterminator="\n")


def _digest(predictions: list) -> str:
    return hashlib.sha256("\n".join(map(str, predictions)).encode()).hexdigest()[:16]


def run_baseline(source: Path, output: Path) -> tuple[str, float]:
    """The plain loop: the digest of its predictions in input order, and its seconds."""
    params = load_params(ROOT / "params.yaml")
    contract = params.contract
    model = load_pinned_model(ROOT, contract)
    pipeline = model.predictor.pipeline
    classes = model.predictor.classes
    output.mkdir(parents=True)
    started = time.perf_counter()
    predictions: list = []
    reader = pd.read_csv(source, dtype=str, chunksize=BASELINE_CHUNK_ROWS)
    for number, chunk in enumerate(reader):
        frame = chunk.loc[:, list(contract.features)]
        for name in contract.features:
            dtype = contract.columns[name].dtype
            if dtype in NUMERIC_DTYPES:
                frame[name] = pd.to_numeric(frame[name])
            elif dtype == "bool":
                frame[name] = frame[name].str.lower().map({"true": True, "false": False})
        if classes is None:
            values = pipeline.predict(frame).astype(float).tolist()
            table = pa.table({"prediction": values})
        else:
            probabilities = pipeline.predict_proba(frame)
            values = classes[probabilities.argmax(axis=1)].tolist()
            flat = pa.array(np.asarray(probabilities, dtype=np.float64).ravel())
            table = pa.table(
                {
                    "prediction": values,
                    "probabilities": pa.FixedSizeListArray.from_arrays(flat, len(classes)),
                }
            )
        pq.write_table(table, output / f"part-{number:05d}.parquet")
        predictions.extend(values)
    return _digest(predictions), time.perf_counter() - started


def run_score(source: Path, output: Path, workers: int) -> tuple[str, dict]:
    """`score` embedded (workers 0) or on a LocalCluster (started before the clock runs)."""
    params = load_params(ROOT / "params.yaml")
    model = load_pinned_model(ROOT, params.contract)
    partition = params.score.partition_bytes
    if workers == 0:
        summary = score(str(source), str(output), model=model, partition_bytes=partition)
    else:
        from distributed import LocalCluster

        with LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=0,
        ) as cluster:
            summary = score(
                str(source),
                str(output),
                model=model,
                scheduler=cluster.scheduler_address,
                partition_bytes=partition,
            )
    scored = pd.read_parquet(output / SCORED_DIR).sort_values("row_id")
    return _digest(scored["prediction"].tolist()), summary


def measure(mode: str, source: Path, output: Path) -> dict:
    """One measurement in this process: seconds, digest, peak memory."""
    summary: dict = {}
    if mode == "baseline":
        digest, seconds = run_baseline(source, output)
    else:
        workers = 0 if mode == "embedded" else int(mode.split("-")[1])
        digest, summary = run_score(source, output, workers)
        seconds = summary["seconds"]  # from reading the input to the marker written
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "seconds": seconds,
        "digest": digest,
        "peak_mib": peak_kib / 1024,
        "partitions": summary.get("partitions"),
        "quarantined": summary.get("quarantined", 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--one", nargs=3, metavar=("MODE", "INPUT", "OUTPUT"), help="internal")
    args = parser.parse_args(argv)
    if args.one:
        mode, source, output = args.one
        print(json.dumps(measure(mode, Path(source), Path(output))))
        return 0
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="mlgitops-bench-batch-") as folder:
        for size in args.sizes:
            source = Path(folder) / f"rows-{size}.csv"
            write_input(source, size)
            mib = source.stat().st_size / 2**20
            results = {}
            for mode in args.modes:
                output = Path(folder) / f"out-{size}-{mode}"
                done = subprocess.run(
                    [sys.executable, __file__, "--one", mode, str(source), str(output)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"  {size:,} rows, {mode}: {results[mode]}", file=sys.stderr, flush=True)
            base = results.get("baseline")
            for mode, result in results.items():
                rows_out.append(
                    (
                        size,
                        mib,
                        mode,
                        result["seconds"],
                        size / result["seconds"],
                        (base["seconds"] / result["seconds"]) if base else float("nan"),
                        result["peak_mib"],
                        result["partitions"] or "-",
                        "yes" if base and result["digest"] == base["digest"] else "no",
                    )
                )
    print(
        "| rows | CSV MiB | run | seconds | rows/s | vs baseline | peak MiB | partitions "
        "| predictions = baseline |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for size, mib, mode, seconds, rate, ratio, peak, parts, same in rows_out:
        print(
            f"| {size:,} | {mib:.0f} | {mode} | {seconds:.2f} | {rate:,.0f} | {ratio:.2f}x "
            f"| {peak:.0f} | {parts} | {same} |"
        )
    differ = [f"{size:,} {mode}" for size, _, mode, *_, same in rows_out if same != "yes"]
    if differ:
        print(f"predictions differ from the baseline: {', '.join(differ)}", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
