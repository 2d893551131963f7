"""`dvc repro` in temporary copies: reproducible, general, and stopped by bad data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import PROJECT_ROOT, fetch_data, run

pytestmark = pytest.mark.slow


def output_hashes(lock_path: Path) -> dict[str, str]:
    """Every stage output path and its md5, from a dvc.lock."""
    lock = yaml.safe_load(lock_path.read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


def reproduce(project: Path) -> None:
    fetch_data(project)
    run(["dvc", "repro", "--force"], project)


def test_two_copies_reproduce_the_committed_lock_bit_for_bit(project_copy):
    # Given two fresh copies, when each retrains from scratch, then every output hash is equal
    # between them and equal to the committed dvc.lock.
    first, second = project_copy("first"), project_copy("second")
    reproduce(first)
    reproduce(second)
    hashes = output_hashes(first / "dvc.lock")
    assert "artifacts/model.joblib" in hashes
    assert "reports/metrics.json" in hashes
    assert hashes == output_hashes(second / "dvc.lock"), "two runs disagree: not deterministic"
    committed = output_hashes(PROJECT_ROOT / "dvc.lock")
    stale = {p for p in hashes if hashes[p] != committed.get(p)}
    assert not stale, f"committed dvc.lock is not what the pipeline produces for: {sorted(stale)}"
    status = run(["dvc", "status", "--quiet"], first, check=False)
    assert status.returncode == 0, f"workspace differs from dvc.lock: {status.stdout}"


def test_noop_repro_runs_nothing(project_copy):
    project = project_copy()
    reproduce(project)
    again = run(["dvc", "repro"], project)
    assert "Running stage" not in again.stdout, again.stdout


def test_another_dataset_through_params_alone(project_copy):
    # Given the diabetes regression table and a params override (no code change),
    # when the pipeline runs, then regression metrics, plots and explanations come out.
    from sklearn.datasets import load_diabetes

    project = project_copy()
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = frame["sex"].astype(int)
    (project / "data").mkdir()
    frame.to_csv(project / "data" / "raw.csv", index=False)
    shutil.copy(Path(__file__).with_name("diabetes_params.yaml"), project / "params.yaml")
    run(["dvc", "add", "data"], project)
    run(["dvc", "repro"], project)
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["r2_score"] > 0.2, f"the regressor learnt nothing: {metrics['r2_score']}"
    assert metrics["ci"]["mean_absolute_error"]["low"] < metrics["mean_absolute_error"]
    assert set(metrics["slices"]["sex"]) == {"1", "2"}
    plots = project / "reports" / "plots" / "evaluate"
    assert (plots / "residuals.csv").exists()
    assert (plots / "calibration" / "target.csv").exists()
    importance = json.loads((project / "reports" / "shap_importance.json").read_text())
    assert set(importance["mean_abs_shap"]) == {
        "age",
        "sex",
        "bmi",
        "bp",
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
        "ldl_to_hdl",
    }


def test_bad_data_stops_at_validate_and_nothing_downstream_runs(project_copy, params):
    project = project_copy()
    fetch_data(project)
    raw = project / "data" / "raw.csv"
    frame = pd.read_csv(raw, dtype=str)
    # A typed column (not free text) refuses a value that is no number, date, bool or category.
    column = next(n for n, s in params.contract.columns.items() if s.dtype != "string")
    frame.loc[10, column] = "n/a (bird escaped)"
    frame.to_csv(raw, index=False)
    result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0, "the pipeline must fail on a contract violation"
    output = result.stdout + result.stderr
    assert "stage 'validate' stopped" in output
    assert f"column '{column}'" in output
    assert "row 12" in output
    assert "Running stage 'prepare'" not in output, "nothing downstream may run on bad data"
    report = json.loads((project / "reports" / "validation.json").read_text())
    assert report["valid"] is False
    assert not (project / "artifacts" / "model.joblib").exists()
