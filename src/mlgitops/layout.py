"""The project's layout: every path the framework reads or writes, and the dvc.lock readers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# Relative to the project root, as git and dvc.lock name them (POSIX strings, so one name
# serves a workspace file, `git show REV:PATH` and `dvc.api.open`). dvc.yaml passes the stage
# paths on its command lines; tests/unit/test_dvc_yaml.py holds it to these.
PARAMS_PATH = "params.yaml"
DVC_LOCK_PATH = "dvc.lock"
DATA_POINTER = "data.dvc"
RAW_DATA_PATH = "data/raw.csv"
MODEL_PATH = "artifacts/model.joblib"
TRAIN_PATH = "artifacts/train.csv"
TEST_PATH = "artifacts/test.csv"
METRICS_PATH = "reports/metrics.json"
VALIDATION_PATH = "reports/validation.json"
IMPORTANCE_PATH = "reports/shap_importance.json"
PLOTS_DIR = "reports/plots"
# Each stage that runs leaves a record here (not tracked by git or DVC), so the report can
# tell the stages that ran from those DVC restored from its cache.
STAGE_RUNS_DIR = Path(".mlgitops/runs")
# The prediction log's default folder: the service writes it, `make serve` and the monitor use
# it (gitignored with `.mlgitops/`).
PREDICTION_LOG_DIR = ".mlgitops/predictions"


class LayoutError(ValueError):
    """A `dvc.lock` or `.dvc` pointer is missing, unreadable or records no such output."""


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`, such as `dvc.lock` or `data.dvc`.

    Raises:
        LayoutError: when the file is missing or is not a YAML mapping.
    """
    if not path.exists():
        raise LayoutError(f"{path} does not exist; run `make repro` first")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise LayoutError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise LayoutError(f"{path} is not a YAML mapping")
    return loaded


def locked_outs(lock: Mapping[str, Any], stage: str | None = None) -> dict[str, str]:
    """Each output `dvc.lock` records (of one stage, or of all) and its md5, by path."""
    stages = lock.get("stages") or {}
    entries = [stages.get(stage) or {}] if stage is not None else list(stages.values())
    return {
        str(out["path"]): str(out["md5"])
        for entry in entries
        for out in entry.get("outs") or []
        if out.get("path") and out.get("md5")
    }


def locked_md5(lock: Mapping[str, Any], path: Path | str) -> str:
    """The md5 that `dvc.lock` records for the output `path`.

    Raises:
        LayoutError: when no stage of the lock file outputs `path`.
    """
    # As dvc.lock spells it: a str is taken as it is, a Path in its POSIX form.
    name = path if isinstance(path, str) else path.as_posix()
    md5 = locked_outs(lock).get(name)
    if md5 is None:
        raise LayoutError(f"dvc.lock records no output '{name}'; run `make repro` first")
    return md5


def data_md5(pointer: Mapping[str, Any] | None) -> str:
    """The md5 of the raw data that a `.dvc` pointer file records (its first output).

    Raises:
        LayoutError: when the pointer records no output with an md5.
    """
    outs = (pointer or {}).get("outs") or []
    if not outs or not isinstance(outs[0], Mapping) or not outs[0].get("md5"):
        raise LayoutError("the data pointer file records no md5 in 'outs'")
    return str(outs[0]["md5"])
