"""Pipeline benchmark: full and no-op `dvc repro`, and train+evaluate cost as rows grow.

Run with `make bench-pipeline`. The baseline is measured in the same run: the smallest size's
time, scaled linearly, is what each larger size would cost if the pipeline grew linearly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.contract import NUMERIC_DTYPES, ContractParams
from mlgitops.params import Params, load_params
from mlgitops.stages.evaluate import compute_metrics, predict
from mlgitops.stages.prepare import split
from mlgitops.stages.train import fit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def synthetic_table(contract: ContractParams, rows: int, seed: int) -> pd.DataFrame:
    """Rows shaped like the contract: values inside its ranges and categories, 5% missing
    where nullable, and a target that depends on the features so the model has work to do."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    signal = np.zeros(rows)
    for name in contract.features:
        spec = contract.columns[name]
        if spec.dtype in NUMERIC_DTYPES:
            low = spec.min if spec.min is not None else 0.0
            high = spec.max if spec.max is not None else low + 1.0
            values = rng.uniform(low, high, size=rows)
            signal += rng.normal() * (values - low) / (high - low)
            column = pd.Series(values.round() if spec.dtype == "int" else values)
        else:
            categories = list(spec.categories or ("true", "false"))
            picks = rng.integers(0, len(categories), size=rows)
            signal += rng.normal(scale=0.3, size=len(categories))[picks]
            column = pd.Series(np.asarray(categories, dtype=object)[picks])
        if spec.nullable:
            column[rng.random(rows) < 0.05] = None
        columns[name] = column
    target = contract.columns[contract.target]
    if contract.task == "classification":
        labels = list(target.categories or ("true", "false"))
        edges = np.quantile(signal, np.linspace(0, 1, len(labels) + 1)[1:-1])
        columns[contract.target] = np.asarray(labels, dtype=object)[np.digitize(signal, edges)]
    else:
        columns[contract.target] = signal + rng.normal(scale=0.1, size=rows)
    return pd.DataFrame(columns)


def time_train_evaluate(params: Params, rows: int) -> tuple[float, float]:
    frame = synthetic_table(params.contract, rows, params.seed)
    train, test = split(
        frame, contract=params.contract, split=params.prepare.split, seed=params.seed
    )
    start = time.perf_counter()
    model = fit(train, contract=params.contract, train=params.train, seed=params.seed)
    trained = time.perf_counter()
    predictions = predict(model, test, params.contract)
    compute_metrics(
        test, predictions, contract=params.contract, evaluate=params.evaluate, seed=params.seed
    )
    return trained - start, time.perf_counter() - trained


def time_repro() -> tuple[float, float]:
    """Seconds for a forced full `dvc repro` and a no-op one, in a copy of the project."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder)
        for name in listed:
            if (ROOT / name).is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, copy / name)
        quiet = {"cwd": copy, "env": env, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q"], **quiet)
        subprocess.run(["mlgitops", "data", "fetch"], **quiet)
        start = time.perf_counter()
        subprocess.run(["dvc", "repro", "--force"], **quiet)
        full = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], **quiet)
        return full, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--skip-repro", action="store_true", help="only the scaling table")
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml")
    print(f"estimator: {params.train.estimator.name}; machine: {os.cpu_count()} cores\n")
    if not args.skip_repro:
        full, noop = time_repro()
        print("| dvc repro | seconds |\n|---|---:|")
        print(f"| full (--force), default data | {full:.1f} |\n| no-op | {noop:.1f} |\n")
    print("| rows | train s | evaluate s | total s | linear from smallest s | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    baseline = None
    for rows in sorted(args.sizes):
        train_s, evaluate_s = time_train_evaluate(params, rows)
        total = train_s + evaluate_s
        if baseline is None:
            baseline = total / rows
        expected = baseline * rows
        print(
            f"| {rows:,} | {train_s:.2f} | {evaluate_s:.2f} | {total:.2f} | "
            f"{expected:.2f} | {total / expected:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
