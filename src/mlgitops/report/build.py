"""The pull-request report as a dict: the workspace against the base and what is deployed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlgitops import layout
from mlgitops.report import charts, compare
from mlgitops.report.gate import evaluate_gate
from mlgitops.report.inputs import Inputs, stage_runs
from mlgitops.report.inputs import latency as measure_latency
from mlgitops.report.revisions import WORKSPACE, Snapshot, resolve

TOP_FEATURES = 10


def build(inputs: Inputs) -> dict[str, Any]:
    """The report as a JSON-ready dict, its charts included (`render` makes it markdown).

    Args:
        inputs: what `load_inputs` read.

    Raises:
        FileNotFoundError: the workspace has no metrics (the pipeline did not run).
    """
    repo, params = inputs.repo, inputs.params
    base, new = Snapshot(repo, inputs.base_sha), Snapshot(repo, WORKSPACE)
    new_metrics = new.json(layout.METRICS_PATH)
    if new_metrics is None:
        raise FileNotFoundError(f"{layout.METRICS_PATH} is missing; run `dvc repro` first")
    base_metrics = base.json(layout.METRICS_PATH)
    deployed_metrics = None
    deployed_note = inputs.deployed_note
    if inputs.deployed is not None:
        commit = str(inputs.deployed.get("commit", ""))
        try:
            deployed_metrics = Snapshot(repo, resolve(repo, commit)).json(layout.METRICS_PATH)
        except RuntimeError as error:
            deployed_note = f"the deployed commit {commit[:12]} is not in this clone ({error})"
    headline = params.evaluate.headline
    latency, latency_note = measure_latency(repo, params)
    verdict = evaluate_gate(
        params.gates, new_metrics, {"base": base_metrics, "deployed": deployed_metrics}, latency
    )
    pipeline = new.yaml("dvc.yaml") or {}
    report: dict[str, Any] = {
        "pr_number": inputs.pr_number,
        "base": {
            "rev": inputs.base_rev,
            "sha": inputs.base_sha,
            "has_metrics": base_metrics is not None,
        },
        "head": {"sha": inputs.head_sha},
        "deployed": inputs.deployed
        and {**inputs.deployed, "has_metrics": deployed_metrics is not None},
        "verdict": verdict,
        "headline": compare.headline_rows(base_metrics, new_metrics, headline),
        "headline_vs_deployed": (
            compare.headline_rows(deployed_metrics, new_metrics, headline)
            if deployed_metrics
            else None
        ),
        "metrics_diff": compare.metrics_diff(base_metrics, new_metrics),
        "params_diff": compare.params_diff(
            base.yaml(layout.PARAMS_PATH), new.yaml(layout.PARAMS_PATH) or {}
        ),
        "data_diff": compare.data_diff(base, new, list(params.contract.features)),
        "validation": new.json(layout.VALIDATION_PATH),
        "features": compare.importance_rows(
            base.json(layout.IMPORTANCE_PATH), new.json(layout.IMPORTANCE_PATH), TOP_FEATURES
        ),
        "stages": stage_runs(
            repo,
            list(pipeline.get("stages", {})),
            base.yaml(layout.DVC_LOCK_PATH),
            new.yaml(layout.DVC_LOCK_PATH),
            Snapshot(repo, "HEAD").yaml(layout.DVC_LOCK_PATH),
        ),
        "latency_ms_per_row": latency,
        "deployment_record": (
            "found"
            if inputs.deployed is not None
            else "fetch failed"
            if inputs.record_fetch_failed
            else "none"
        ),
        "notes": [n for n in [*inputs.skipped, deployed_note, latency_note] if n],
    }
    report["charts"] = chart_parts(report, base, new)
    return report


def chart_parts(report: dict[str, Any], base: Snapshot, new: Snapshot) -> list[str]:
    """The report's charts (mermaid and tables), from the series the two snapshots hold."""
    parts = []
    scores = [
        r for r in report["headline"] if r["metric"].endswith("_score") and r["new"] is not None
    ]
    if scores:
        parts.append(
            charts.xychart(
                "Headline scores (bars: this PR, line: base)",
                [r["metric"] for r in scores],
                [r["new"] for r in scores],
                [r["base"] for r in scores] if report["base"]["has_metrics"] else None,
                y_label="score",
                y_range=(0.0, 1.0),
            )
        )
    confusion = charts.read_csv_text(
        new.text(f"{layout.PLOTS_DIR}/evaluate/confusion.csv"), labels=True
    )
    if confusion is not None:
        parts.append("**Confusion matrix (this PR)**\n\n" + charts.confusion_table(confusion))
        old = charts.read_csv_text(
            base.text(f"{layout.PLOTS_DIR}/evaluate/confusion.csv"), labels=True
        )
        if old is not None:
            parts.append("**Confusion matrix (base)**\n\n" + charts.confusion_table(old))
    for path in new.listdir(f"{layout.PLOTS_DIR}/evaluate/roc"):
        label = Path(path).stem.replace("_", " ")
        curve = charts.read_csv_text(new.text(path))
        if curve is None:  # listed, but unreadable at this revision
            continue
        parts.append(
            charts.curve_chart(
                f"ROC, {label} (first line: this PR, second: base)",
                charts.read_csv_text(base.text(path)),
                curve,
                "fpr",
                "tpr",
            )
        )
    return parts


def write(report: dict[str, Any], markdown: str, output: Path, repo: Path) -> list[Path]:
    """Write report.md, report.json and PNGs; return the paths written.

    Args:
        report: what `build` returns.
        markdown: what `render` made of it.
        output: the report folder.
        repo: the workspace whose plot tables become PNGs.
    """
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text(markdown, encoding="utf-8")
    (output / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    pngs = charts.render_pngs(repo, output / "plots")
    return [output / "report.md", output / "report.json", *(output / "plots" / p for p in pngs)]
