"""Build the pull-request report: compare the workspace with a base revision (and with the
deployed model when its record is known), check the gate, and write markdown, JSON and PNGs."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from mlgitops import layout
from mlgitops.contract.check import feature_frame, load_valid_table
from mlgitops.deploy import record
from mlgitops.layout import STAGE_RUNS_DIR
from mlgitops.markdown import Section, assemble, fmt, signed, table
from mlgitops.params import Params, parse_params
from mlgitops.report import charts, compare
from mlgitops.report.gate import evaluate_gate, single_row_latency_ms
from mlgitops.report.revisions import WORKSPACE, Snapshot, head_sha, resolve

logger = logging.getLogger(__name__)

MODEL_PATH = "artifacts/model.joblib"
TEST_PATH = "artifacts/test.csv"
DEPLOYMENTS_PATH = Path("deployments.jsonl")
SERVING_OUTCOMES = frozenset({record.RELEASED, record.RESTORED})
TOP_FEATURES = 10


@dataclass
class Inputs:
    """Everything the report is built from, read before any rendering."""

    repo: Path
    params: Params
    base_rev: str
    base_sha: str
    head_sha: str | None
    pr_number: int | None = None
    champion: dict[str, Any] | None = None
    champion_note: str | None = None
    skipped: list[str] = field(default_factory=list)
    record_fetch_failed: bool = False


def champion_record(path: Path) -> dict[str, Any] | None:
    """The deployment serving now: the last record whose outcome left it serving."""
    serving = [entry for entry in record.read(path) if entry.get("outcome") in SERVING_OUTCOMES]
    return serving[-1] if serving else None


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
            "(repository variable `DVC_REMOTE_ROLE_ARN`)."
        )
    return notes


def stage_runs(
    repo: Path,
    stages: list[str],
    base_lock: dict[str, Any] | None,
    new_lock: dict[str, Any] | None,
    committed_lock: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """For each stage: did its inputs or outputs change against the base (from the two
    dvc.lock files), and did it run in this workspace (its run record, with the time).

    A changed stage that did not run here was either committed by the PR already (its entry
    in the workspace's dvc.lock is the committed one: DVC skipped it) or restored by DVC from
    its run cache (the workspace's entry differs from what the PR committed)."""
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


def _latency(repo: Path, params: Params) -> tuple[float | None, str | None]:
    try:
        model = joblib.load(repo / MODEL_PATH)
        rows = feature_frame(load_valid_table(repo / TEST_PATH, params.contract), params.contract)
    except (FileNotFoundError, ValueError) as error:
        return None, f"predict latency not measured: {error}"
    return single_row_latency_ms(model, rows), None


def build(inputs: Inputs) -> tuple[dict[str, Any], str]:
    """The report as a JSON-ready dict and as markdown."""
    repo, params = inputs.repo, inputs.params
    base, new = Snapshot(repo, inputs.base_sha), Snapshot(repo, WORKSPACE)
    new_metrics = new.json(layout.METRICS_PATH)
    if new_metrics is None:
        raise FileNotFoundError(f"{layout.METRICS_PATH} is missing; run `dvc repro` first")
    base_metrics = base.json(layout.METRICS_PATH)
    champion_metrics = None
    champion_note = inputs.champion_note
    if inputs.champion is not None:
        commit = str(inputs.champion.get("commit", ""))
        try:
            champion_metrics = Snapshot(repo, resolve(repo, commit)).json(layout.METRICS_PATH)
        except RuntimeError as error:
            champion_note = f"the deployed commit {commit[:12]} is not in this clone ({error})"
    headline = params.evaluate.headline
    latency, latency_note = _latency(repo, params)
    verdict = evaluate_gate(
        params.gates, new_metrics, {"base": base_metrics, "champion": champion_metrics}, latency
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
        "champion": inputs.champion
        and {**inputs.champion, "has_metrics": champion_metrics is not None},
        "verdict": verdict,
        "headline": compare.headline_rows(base_metrics, new_metrics, headline),
        "headline_vs_champion": (
            compare.headline_rows(champion_metrics, new_metrics, headline)
            if champion_metrics
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
            base.yaml("dvc.lock"),
            new.yaml("dvc.lock"),
            Snapshot(repo, "HEAD").yaml("dvc.lock"),
        ),
        "latency_ms_per_row": latency,
        "deployment_record": (
            "found"
            if inputs.champion is not None
            else "fetch failed"
            if inputs.record_fetch_failed
            else "none"
        ),
        "notes": [n for n in [*inputs.skipped, champion_note, latency_note] if n],
    }
    return report, render(report, base, new)


def _verdict_line(verdict: dict[str, Any]) -> str:
    failed = [r for r in verdict["rules"] if r["status"] == "failed"]
    if not failed:
        return f"**Gate: passed** ({len(verdict['rules'])} rules, mode `{verdict['mode']}`)"
    word = "failed" if verdict["mode"] == "enforce" else "failed (advisory: not blocking)"
    return f"**Gate: {word}**: {len(failed)} of {len(verdict['rules'])} rules failed"


def _headline_section(report: dict[str, Any]) -> str:
    if not report["base"]["has_metrics"]:
        intro = "_No baseline: the base revision has no `reports/metrics.json`._\n\n"
    else:
        intro = ""
    rows = []
    champion = {r["metric"]: r for r in report["headline_vs_champion"] or []}
    for row in report["headline"]:
        arrow = {True: " ✅", False: " 🔻", None: ""}[row["improved"]]
        interval = (
            f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]" if row["ci_low"] is not None else "—"
        )
        cells = [
            f"`{row['metric']}`",
            row["base"],
            row["new"],
            signed(row["delta"]) + arrow,
            interval,
        ]
        if champion:
            cells += [champion[row["metric"]]["base"], signed(champion[row["metric"]]["delta"])]
        rows.append(cells)
    header = ["metric", "base", "this PR", "Δ vs base", "95% interval"]
    if champion:
        header += ["deployed", "Δ vs deployed"]
    return intro + table(header, rows, "l" + "r" * (len(header) - 1))


def _gate_section(verdict: dict[str, Any]) -> str:
    icons = {"passed": "✅", "failed": "❌", "skipped": "➖", "warned": "⚠️"}
    rows = [
        [icons[r["status"]] + " " + r["status"], r["rule"], r["against"], r["detail"]]
        for r in verdict["rules"]
    ]
    return table(["", "rule", "against", "detail"], rows) if rows else "_No rules configured._"


def _params_section(diff: list[dict[str, Any]]) -> str:
    if not diff:
        return "_No params changed._"
    return table(["key", "base", "this PR"], [[f"`{d['key']}`", d["base"], d["new"]] for d in diff])


def _data_section(data: dict[str, Any]) -> str:
    lines = []
    if data["data_changed"]:
        lines.append(
            f"`data.dvc` changed: `{fmt(data['data_hash_base'])}` → `{fmt(data['data_hash_new'])}`"
        )
    else:
        lines.append(f"`data.dvc` unchanged (`{fmt(data['data_hash_new'])}`)")
    lines.append(f"\nRows: {fmt(data['rows_base'])} → {fmt(data['rows_new'])}\n")
    if data["schema_changes"]:
        lines.append("**Schema changes**\n")
        lines.append(
            table(
                ["column", "change", "detail"],
                [
                    [
                        c["column"],
                        c["change"],
                        c.get("dtype") or f"{c.get('base')} → {c.get('new')}",
                    ]
                    for c in data["schema_changes"]
                ],
            )
        )
        lines.append("")
    if data["column_changes"]:
        lines.append("**Null rates and new categories**\n")
        lines.append(
            table(
                ["column", "null rate base", "null rate PR", "new categories"],
                [
                    [
                        c["column"],
                        c["null_rate_base"],
                        c["null_rate_new"],
                        ", ".join(c["new_categories"]) or "—",
                    ]
                    for c in data["column_changes"]
                ],
                "lrrl",
            )
        )
        lines.append("")
    if data["drift"]:
        lines.append(
            "**Drift of the training rows, base → PR** (KS statistic for numbers, "
            "Jensen-Shannon distance for categories; 0 is identical)\n"
        )
        lines.append(
            table(
                ["feature", "test", "statistic", "p-value"],
                [[d["feature"], d["test"], d["statistic"], d["p_value"]] for d in data["drift"]],
                "llrr",
            )
        )
    elif data["drift_unavailable"]:
        lines.append(f"_Drift not computed: {data['drift_unavailable']}_")
    return "\n".join(lines)


def _features_section(features: list[dict[str, Any]]) -> str:
    if not features:
        return "_No explanations found (`reports/shap_importance.json`)._"
    rows = [[f["rank"], f["feature"], f["new"], f["base"], f["base_rank"]] for f in features]
    chart = charts.xychart(
        "Mean absolute SHAP per feature (bars: this PR, line: base)",
        [f["feature"] for f in features],
        [f["new"] for f in features],
        [f["base"] for f in features] if any(f["base"] is not None for f in features) else None,
        y_label="mean abs SHAP",
    )
    return (
        table(["#", "feature", "mean abs SHAP", "base", "base rank"], rows, "rlrrr")
        + "\n\n"
        + chart
    )


def _charts_section(report: dict[str, Any], base: Snapshot, new: Snapshot) -> str:
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
        parts.append(
            charts.curve_chart(
                f"ROC, {label} (first line: this PR, second: base)",
                charts.read_csv_text(base.text(path)),
                charts.read_csv_text(new.text(path)),
                "fpr",
                "tpr",
            )
        )
    return "\n\n".join(parts) or "_No charts for this task._"


def _reproduce_section(report: dict[str, Any]) -> str:
    sha = report["head"]["sha"] or "<commit>"
    # The PR's head commit (never the test merge CI checked out, which exists nowhere else);
    # GitHub keeps it under pull/N/head, for forks too.
    number = report.get("pr_number")
    fetch = f"git fetch origin pull/{number}/head" if number else f"git fetch origin {sha}"
    return "\n".join(
        [
            "```console",
            fetch,
            f"git checkout {sha}",
            "make repro        # venv, data, dvc repro, metrics",
            f"mlgitops report --base {report['base']['sha']}",
            "```",
        ]
    )


def _stages_section(stages: list[dict[str, Any]]) -> str:
    rows = [
        [
            s["stage"],
            "yes" if s["changed_vs_base"] else "no",
            s["status"],
            "—" if s["seconds"] is None else f"{s['seconds']:.1f}",
            s["finished_at"],
        ]
        for s in stages
    ]
    header = ["stage", "changed vs base", "in this workspace", "seconds", "finished (UTC)"]
    return table(header, rows, "lllrl")


def _validation_section(validation: dict[str, Any] | None) -> str:
    if validation is None:
        return "_No validation report._"
    status = "passed" if validation.get("valid") else "**failed**"
    lines = [f"Contract check {status} on {validation.get('rows')} rows."]
    for failure in validation.get("failures", []):
        lines.append(
            f"- column `{failure['column']}`: {failure['check']} ({failure['count']} rows)"
        )
    rows = [
        [name, c.get("dtype"), c.get("role"), c.get("null_rate")]
        for name, c in validation.get("columns", {}).items()
    ]
    lines += ["", table(["column", "dtype", "role", "null rate"], rows, "lllr")]
    return "\n".join(lines)


def _metrics_section(diff: list[dict[str, Any]]) -> str:
    if not diff:
        return "_No metric changed._"
    return table(
        ["metric", "base", "this PR", "Δ"],
        [[f"`{d['metric']}`", d["base"], d["new"], signed(d["delta"])] for d in diff],
        "lrrr",
    )


def render(report: dict[str, Any], base: Snapshot, new: Snapshot) -> str:
    """The markdown report; the least important sections go first if it is too long."""
    head = report["head"]["sha"]
    base_sha, base_rev = report["base"]["sha"], report["base"]["rev"]
    # Name the base as it was asked for (a branch, a tag) when that is not the sha itself.
    named = "" if base_sha.startswith(base_rev) else f" (`{base_rev}`)"
    title = (
        f"## mlgitops report: `{(head or 'workspace')[:12]}` vs base "
        f"`{base_sha[:12]}`{named}\n\n{_verdict_line(report['verdict'])}"
    )
    if report["champion"]:
        deployed = str(report["champion"].get("commit", ""))[:12]
        title += f" · compared with the deployed model `{deployed}` too"
    elif report.get("deployment_record") == "fetch failed":
        title += " · the deployment record could not be fetched: compared with the base only"
    else:
        title += " · no deployment record: compared with the base branch only"
    notes = "".join(f"\n> [!WARNING]\n> {note}\n" for note in report["notes"])
    sections = [
        Section("", title + "\n" + notes, 1),
        Section("Headline metrics", _headline_section(report), 1),
        Section("Quality gate", _gate_section(report["verdict"]), 1),
        Section("Params changed", _params_section(report["params_diff"]), 2),
        Section("Data", _data_section(report["data_diff"]), 3),
        Section("Top features by mean |SHAP|", _features_section(report["features"]), 4),
        Section("How to reproduce", _reproduce_section(report), 2),
        Section("Pipeline stages", _stages_section(report["stages"]), 5),
        Section("Charts", _charts_section(report, base, new), 6),
        Section("Every metric that changed", _metrics_section(report["metrics_diff"]), 7),
        Section("Validation report", _validation_section(report["validation"]), 8),
    ]
    return assemble(sections)


def write(report: dict[str, Any], markdown: str, output: Path, repo: Path) -> list[Path]:
    """Write report.md, report.json and PNGs; append to the job summary when there is one."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text(markdown, encoding="utf-8")
    (output / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    pngs = charts.render_pngs(repo, output / "plots")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    return [output / "report.md", output / "report.json", *(output / "plots" / p for p in pngs)]


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
    import yaml

    params = parse_params(
        yaml.safe_load((repo / params_path).read_text(encoding="utf-8")), source=str(params_path)
    )
    record = champion_record(deployments if deployments.is_absolute() else repo / deployments)
    fetch_failed = environ.get("MLGITOPS_DEPLOYMENTS_FETCH") == "failure"
    return Inputs(
        repo=repo,
        params=params,
        base_rev=base_rev,
        base_sha=resolve(repo, base_rev),
        head_sha=head or head_sha(repo),
        pr_number=pr_number,
        champion=record,
        champion_note=(
            "the deployment record could not be fetched (see the fetch step's log): this PR is "
            "compared with the base branch only, not with the deployed model"
            if fetch_failed and record is None
            else None
        ),
        skipped=skipped_parts(environ),
        record_fetch_failed=fetch_failed and record is None,
    )
