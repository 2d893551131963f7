"""Adoption: generated tables taken through the whole template with no code change.

Each shape is drawn from the session seed (tests/tables.py): classification (binary and
multiclass) and regression; targets as text, ints and bools; int, float, bool, category and
date columns, nullable ones with gaps; column names with spaces, slashes, parentheses and
non-ASCII letters; identifier and personal columns; with and without slices and derived
features. Half are adopted with `mlgitops init`, half with a written contract. Each then
runs the pipeline, the report against its base commit, the gate, the real service and the
monitor. The pipeline runs with `dvc repro` for some shapes and for the others as the same
stage commands of dvc.yaml called in-process and recorded with `dvc commit` (the time
budget of the tier); two shapes are served by a real `mlgitops serve` fed by
`mlgitops simulate-traffic`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import copy_project, run
from live_server import API_KEYS, packaged_home, start_server, wait_ready
from mlgitops.cli import main
from mlgitops.params import parse_params
from tables import random_shape, table_from_contract

pytestmark = [
    pytest.mark.slow,
    # Raised inside shap's plotting module when it is imported, not by this project.
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:shap"),
]
logger = logging.getLogger(__name__)

ROWS = 240
# (task, target dtype, classes, how the contract is made); twelve shapes per run.
SHAPES = (
    ("classification", "category", 3, "init"),
    ("classification", "category", 2, "written"),
    ("classification", "int", 3, "init"),
    ("classification", "int", 2, "written"),
    ("classification", "bool", 2, "init"),
    ("classification", "bool", 2, "written"),
    ("regression", "float", 0, "init"),
    ("regression", "float", 0, "written"),
    ("regression", "int", 0, "init"),
    ("regression", "int", 0, "written"),
    ("classification", "category", 4, "written"),
    ("classification", "int", 4, "init"),
)
WITH_DVC_REPRO = {0, 7}  # the rest run dvc.yaml's stage commands in-process
WITH_REAL_SERVER = {3, 6}
SERVICE_CHECK = Path(__file__).with_name("service_check.py")


def _stage_commands(project: Path) -> list[tuple[str, list[str]]]:
    """(module, argv) of each stage in dvc.yaml, in its order (each `python -m module ...`)."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    commands = []
    for name, stage in stages.items():
        words = shlex.split(stage["cmd"])
        assert words[:2] == ["python", "-m"], f"stage {name} is not `python -m`: {words}"
        commands.append((words[2], words[3:]))
    return commands


def _pipeline(project: Path, *, dvc_repro: bool) -> None:
    if dvc_repro:
        run(["dvc", "repro"], project)
        return
    here = Path.cwd()
    os.chdir(project)
    try:
        for module, argv in _stage_commands(project):
            code = importlib.import_module(module).main(argv)
            assert code == 0, f"{module} {argv} exited {code}"
    finally:
        os.chdir(here)
    run(["dvc", "commit", "--force", "--quiet"], project)
    status = run(["dvc", "status"], project).stdout
    assert "changed" not in status, f"dvc.lock does not record the outputs:\n{status}"


def _commit(project: Path, message: str) -> str:
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], project)
    return run(["git", "rev-parse", "HEAD"], project).stdout.strip()


def _adopt(project: Path, index: int, seed: int, tmp_path: Path) -> dict[str, Any]:
    task, target_dtype, classes, via = SHAPES[index]
    shape = random_shape(seed + index, task=task, target_dtype=target_dtype, classes=classes)
    logger.info("shape %d (%s): %s", index, via, shape.description)
    contract = parse_params(shape.params).contract
    table = table_from_contract(contract, rows=ROWS, seed=seed + index)
    if via == "init":
        data = tmp_path / "my table.csv"
        table.to_csv(data, index=False, lineterminator="\n")
        argv = ["init", "--data", str(data), "--target", contract.target, "--repo", str(project)]
        assert main([*argv, "--params", str(project / "params.yaml")]) == 0, "init failed"
    else:
        (project / "params.yaml").write_text(
            yaml.safe_dump(shape.params, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        table.to_csv(project / "data" / "raw.csv", index=False, lineterminator="\n")
        run(["dvc", "add", "data"], project)
    adopted = parse_params(yaml.safe_load((project / "params.yaml").read_text()))
    assert adopted.contract.task == task, f"adopted as {adopted.contract.task}, not {task}"
    return {"shape": shape.description, "via": via}


def _service(project: Path, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """The service check in a process of its own; its answers and the prediction log dir."""
    logs = tmp_path / "predictions"
    (tmp_path / "prometheus").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLGITOPS_", "PROMETHEUS"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        BENTOML_HOME=str(tmp_path / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        DVC_NO_ANALYTICS="1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        MLGITOPS_API_KEYS="adoption-key",
        MLGITOPS_PREDICTION_LOG_DIR=str(logs),
    )
    output = tmp_path / "service.json"
    done = subprocess.run(
        [sys.executable, str(SERVICE_CHECK), str(project), str(output)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"service check failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(output.read_text()), logs


def _check_service(seen: dict[str, Any], params: Any) -> None:
    assert seen["predict"] == 200, f"/predict answered {seen['predict']}: {seen['predict_body']}"
    assert len(seen["predictions"]) == seen["records"], "not every record was predicted"
    assert seen["explain"] == 200, f"/explain answered {seen['explain']}: {seen['explain_body']}"
    for answer in seen["explain_body"]:
        assert answer["contributions"], f"no contributions in {answer}"
    assert seen["feedback"] == [200], f"/feedback answered {seen['feedback']}"
    assert seen["metadata"] == 200, "/metadata failed"
    described = json.dumps(seen["metadata_body"], ensure_ascii=False)
    missing = [
        name
        for name in params.contract.features
        if json.dumps(name, ensure_ascii=False)[1:-1] not in described
    ]
    assert not missing, f"/metadata does not describe the features {missing}"
    assert seen["bad_record"] == 400, f"an unknown field got {seen['bad_record']}"
    assert seen["bad_feedback"] == 400, f"a list as label got {seen['bad_feedback']}"
    assert seen["no_key"] == 401, f"no API key got {seen['no_key']}"


def _monitor(project: Path, logs: Path, out: Path) -> int:
    code = main(
        [
            "monitor",
            "check",
            "--logs",
            str(logs),
            "--reference",
            str(project / "artifacts" / "train.csv"),
            "--lock",
            str(project / "dvc.lock"),
            "--metrics",
            str(project / "reports" / "metrics.json"),
            "--params",
            str(project / "params.yaml"),
            "--output-dir",
            str(out),
        ]
    )
    drift = json.loads((out / "drift.json").read_text())
    decay = json.loads((out / "decay.json").read_text())
    assert decay["latest"] is not None, f"decay scored no window: {decay['windows']}"
    found = drift["drift_found"] or decay["decay_found"]
    assert code == (1 if found else 0), f"exit {code} with drift/decay {found}"
    return code


def _real_server(project: Path, tmp_path: Path) -> None:
    """`mlgitops serve` of the project fed by `mlgitops simulate-traffic`, then the monitor."""
    home = packaged_home(tmp_path / "served", project)
    server = start_server(home, extra_args=["--params", str(project / "params.yaml")])
    try:
        wait_ready(server)
        env_key = {"MLGITOPS_API_KEY": API_KEYS[0]}
        test, project_params = project / "artifacts" / "test.csv", project / "params.yaml"
        sent = subprocess.run(
            [
                *("mlgitops", "simulate-traffic", "--url", server.url, "--no-progress"),
                *("--data", str(test), "--params", str(project_params)),
            ],
            cwd=project,
            env={**home.env(), **env_key},
            capture_output=True,
            text=True,
            check=False,
        )
        assert sent.returncode == 0, f"simulate-traffic:\n{sent.stdout}\n{sent.stderr[-3000:]}"
    finally:
        server.stop()
    options = {
        "--logs": home.predictions,
        "--params": project / "params.yaml",
        "--reference": project / "artifacts" / "train.csv",
        "--lock": project / "dvc.lock",
        "--output-dir": tmp_path / "served-out",
    }
    drift = main(["monitor", "drift", *(str(x) for pair in options.items() for x in pair)])
    assert drift in {0, 1}, f"drift could not judge the real server's log (exit {drift})"


@pytest.mark.parametrize("index", range(len(SHAPES)), ids=[f"{s[0]}-{s[1]}-{s[3]}" for s in SHAPES])
def test_a_generated_table_is_adopted_with_no_code_change(index, tmp_path, seed):
    # Given a fresh copy of the template and a generated table, when it is adopted and taken
    # through the lifecycle, then every step works on it unchanged.
    project = copy_project(tmp_path / "project", remote=tmp_path / "remote")
    (project / "data").mkdir(exist_ok=True)
    described = _adopt(project, index, seed, tmp_path)
    _commit(project, "Adopt a generated table")
    _pipeline(project, dvc_repro=index in WITH_DVC_REPRO)
    base = _commit(project, "Train on it")

    # A pull request that changes only how evaluation plots calibration: same model.
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["evaluate"]["calibration_bins"] = raw["evaluate"].get("calibration_bins", 10) + 1
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    _pipeline(project, dvc_repro=index in WITH_DVC_REPRO)
    report_dir = project / "report"
    argv = ["report", "--repo", str(project), "--base", base, "--output-dir", str(report_dir)]
    assert main([*argv, "--params", str(project / "params.yaml")]) == 0, "report failed"
    markdown = (report_dir / "report.md").read_text()
    assert base[:12] in markdown.splitlines()[0], "the first line does not name the base"
    params = parse_params(raw)
    if params.contract.task == "classification":
        assert "Confusion matrix (this PR)" in markdown, "no confusion matrix in the report"
    assert main(["gate", "--report", str(report_dir / "report.json")]) == 0, (
        f"the gate blocked an unchanged model: {described}"
    )

    seen, logs = _service(project, tmp_path)
    _check_service(seen, params)
    _monitor(project, logs, tmp_path / "monitor")
    if index in WITH_REAL_SERVER:
        _real_server(project, tmp_path)
