"""What the report is built from: revisions, params, what is deployed, stage runs, latency."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from mlgitops import layout
from mlgitops.config import read_params_file
from mlgitops.contract.check import feature_frame, load_valid_table
from mlgitops.deployment_record import serving_now
from mlgitops.layout import STAGE_RUNS_DIR
from mlgitops.params import Params, parse_params
from mlgitops.report.gate import single_row_latency_ms
from mlgitops.report.revisions import head_sha, resolve


@dataclass
class Inputs:
    """Everything the report is built from, read before any rendering."""

    repo: Path
    params: Params
    base_rev: str
    base_sha: str
    head_sha: str | None
    pr_number: int | None = None
    deployed: dict[str, Any] | None = None
    deployed_note: str | None = None
    skipped: list[str] = field(default_factory=list)
    record_fetch_failed: bool = False


def load_inputs(
    repo: Path,
    base_rev: str,
    params_path: Path,
    *,
    pr_number: int | None,
    deployments: Path,
    environ: dict[str, str],
    head: str | None = None,
) -> Inputs:
    """Resolve revisions and read params, the deployment record and the environment.

    `head` is the commit a reviewer reproduces (the PR's head; the checkout may be the test
    merge of it with the base). `MLGITOPS_DEPLOYMENTS_FETCH=failure` in `environ` (the fetch
    step's outcome) says the record could not be fetched, which is not the same as none.
    """
    params = parse_params(read_params_file(repo / params_path), source=str(params_path))
    deployed = serving_now(deployments if deployments.is_absolute() else repo / deployments)
    fetch_failed = environ.get("MLGITOPS_DEPLOYMENTS_FETCH") == "failure"
    return Inputs(
        repo=repo,
        params=params,
        base_rev=base_rev,
        base_sha=resolve(repo, base_rev),
        head_sha=head or head_sha(repo),
        pr_number=pr_number,
        deployed=deployed,
        deployed_note=(
            "the deployment record could not be fetched (see the fetch step's log): this PR is "
            "compared with the base branch only, not with the deployed model"
            if fetch_failed and deployed is None
            else None
        ),
        skipped=skipped_parts(environ),
        record_fetch_failed=fetch_failed and deployed is None,
    )


def skipped_parts(environ: dict[str, str]) -> list[str]:
    """Which parts of the PR workflow could not run here, and why (fork PRs get no secrets)."""
    notes = []
    if environ.get("MLGITOPS_FORK_PR") == "true":
        notes.append(
            "`dvc push` did not run: pull requests from forks get no secrets, so results were "
            "not uploaded to the DVC remote; a maintainer can re-run them from a branch."
        )
    elif environ.get("MLGITOPS_REMOTE_CONFIGURED") == "false":
        notes.append(
            "`dvc push` did not run: no DVC remote role is configured "
            "(repository variable `DVC_PR_ROLE_ARN`)."
        )
    return notes


def stage_runs(
    repo: Path,
    stages: list[str],
    base_lock: dict[str, Any] | None,
    new_lock: dict[str, Any] | None,
    committed_lock: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """For each stage: did it change against the base, and did it run in this workspace.

    Changes come from the two dvc.lock files; a run, from the stage's run record (with the
    time). A changed stage that did not run here was either committed by the PR already (its
    entry in the workspace's dvc.lock is the committed one: DVC skipped it) or restored by DVC
    from its run cache (the workspace's entry differs from what the PR committed).
    """
    base_stages = (base_lock or {}).get("stages", {})
    new_stages = (new_lock or {}).get("stages", {})
    committed_stages = (committed_lock or {}).get("stages", {})
    rows = []
    for stage in stages:
        changed = base_stages.get(stage) != new_stages.get(stage)
        record_path = repo / STAGE_RUNS_DIR / f"{stage}.json"
        record = (
            json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else None
        )
        if record is not None:
            status = "ran here"
        elif changed and committed_stages.get(stage) == new_stages.get(stage):
            status = "skipped: committed with this PR's dvc.lock"
        elif changed:
            status = "restored from the DVC run cache"
        else:
            status = "unchanged from base, not run"
        rows.append(
            {
                "stage": stage,
                "changed_vs_base": changed,
                "status": status,
                "seconds": None if record is None else record.get("seconds"),
                "finished_at": None if record is None else record.get("finished_at"),
            }
        )
    return rows


def latency(repo: Path, params: Params) -> tuple[float | None, str | None]:
    """One row's predict latency of the workspace model in ms, or why it was not measured."""
    try:
        model = joblib.load(repo / layout.MODEL_PATH)
        rows = feature_frame(
            load_valid_table(repo / layout.TEST_PATH, params.contract), params.contract
        )
    except (FileNotFoundError, ValueError) as error:
        return None, f"predict latency not measured: {error}"
    return single_row_latency_ms(model, rows), None
