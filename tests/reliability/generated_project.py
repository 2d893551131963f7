"""A project made from a generated table and its own params, ready for `mlgitops package`.

The workspace files `package` reads (params, the fitted model, train and test rows, metrics,
the lock and data pointers) are written directly, without the DVC pipeline: the model is
fitted by the pipeline's own `fit`, so it is what `dvc repro` would train on that table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import yaml

from mlgitops.contract.check import load_valid_table
from mlgitops.params import parse_params
from mlgitops.stages.train import fit

ROWS = 160


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def generated_table(
    rng: np.random.Generator, *, target_dtype: str, n_classes: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A contract (as params.yaml holds it) and a table drawn from it: float, int and
    category features (one nullable), and a classification target of `target_dtype`."""
    categories = [f"k{i}" for i in range(int(rng.integers(2, 5)))]
    frame = pd.DataFrame(
        {
            "size (cm)": rng.normal(50, 10, size=ROWS).round(3),
            "count": rng.integers(0, 20, size=ROWS),
            "kind": rng.choice(categories, size=ROWS),
        }
    )
    frame.loc[rng.random(ROWS) < 0.1, "size (cm)"] = np.nan
    score = frame["size (cm)"].fillna(50) / 10 + frame["count"] / 5 + rng.normal(0, 1, size=ROWS)
    bins = pd.qcut(score, n_classes, labels=False).to_numpy()
    target: dict[str, Any] = {"dtype": target_dtype, "role": "target"}
    if target_dtype == "int":
        frame["label"] = bins
    elif target_dtype == "bool":
        frame["label"] = bins.astype(bool)
    else:
        names = [f"{i:02d}" for i in range(n_classes)]  # numeric-looking text stays text
        target["categories"] = names
        frame["label"] = np.array(names)[bins]
    columns = {
        "size (cm)": {"dtype": "float", "nullable": True, "min": 0, "max": 200},
        "count": {"dtype": "int", "min": 0, "max": 100},
        "kind": {"dtype": "category", "categories": categories},
        "label": target,
    }
    return {"task": "classification", "columns": columns}, frame


def write_project(
    root: Path,
    *,
    seed: int,
    target_dtype: str = "int",
    n_classes: int = 2,
    estimator: dict[str, Any] | None = None,
    serve: dict[str, Any] | None = None,
) -> Path:
    """Write a generated project into `root` (its own params: contract, estimator, serve)."""
    rng = np.random.default_rng(seed)
    contract, frame = generated_table(rng, target_dtype=target_dtype, n_classes=n_classes)
    raw = {
        "seed": seed,
        "contract": contract,
        "prepare": {"split": {"method": "random", "test_size": 0.25}},
        "train": {"estimator": estimator or {"name": "logistic_regression"}},
        "validate": {},
        "evaluate": {"headline": ["balanced_accuracy_score"], "slices": []},
        "explain": {},
        "gates": {"floors": {}, "max_regression": {}, "non_inferiority": {}},
        "serve": serve or {},
    }
    params = parse_params(raw, source="generated params")
    for folder in ("artifacts", "reports", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    test = frame.sample(frac=0.25, random_state=seed)
    train = frame.drop(test.index)
    frame.to_csv(root / "data" / "raw.csv", index=False)
    train.to_csv(root / "artifacts" / "train.csv", index=False)
    test.to_csv(root / "artifacts" / "test.csv", index=False)
    model = root / "artifacts" / "model.joblib"
    # Typed by the contract from the CSV, exactly as the train stage reads its input.
    typed = load_valid_table(root / "artifacts" / "train.csv", params.contract)
    joblib.dump(fit(typed, contract=params.contract, train=params.train, seed=seed), model)
    (root / "reports" / "metrics.json").write_text(json.dumps({"balanced_accuracy_score": 0.5}))
    lock = {"stages": {"train": {"outs": [{"path": "artifacts/model.joblib", "md5": _md5(model)}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    pointer = {"outs": [{"md5": _md5(root / "data" / "raw.csv"), "path": "data/raw.csv"}]}
    (root / "data.dvc").write_text(yaml.safe_dump(pointer), encoding="utf-8")
    return root
