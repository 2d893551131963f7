"""The report as markdown: one function per section, and a pure `render(report)`."""

from __future__ import annotations

from typing import Any

from mlgitops.markdown import Section, assemble, fmt, signed, table
from mlgitops.report import charts


def render(report: dict[str, Any]) -> str:
    """The markdown of a report dict (pure); the least important sections go first if too long.

    Args:
        report: what `build` returns.
    """
    head = report["head"]["sha"]
    base_sha, base_rev = report["base"]["sha"], report["base"]["rev"]
    # Name the base as it was asked for (a branch, a tag) when that is not the sha itself.
    named = "" if base_sha.startswith(base_rev) else f" (`{base_rev}`)"
    title = (
        f"## mlgitops report: `{(head or 'workspace')[:12]}` vs base "
        f"`{base_sha[:12]}`{named}\n\n{_verdict_line(report['verdict'])}"
    )
    if report["deployed"]:
        deployed = str(report["deployed"].get("commit", ""))[:12]
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
        Section("Charts", _charts_section(report), 6),
        Section("Every metric that changed", _metrics_section(report["metrics_diff"]), 7),
        Section("Validation report", _validation_section(report["validation"]), 8),
    ]
    return assemble(sections)


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
    deployed = {r["metric"]: r for r in report["headline_vs_deployed"] or []}
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
        if deployed:
            cells += [deployed[row["metric"]]["base"], signed(deployed[row["metric"]]["delta"])]
        rows.append(cells)
    header = ["metric", "base", "this PR", "Δ vs base", "95% interval"]
    if deployed:
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


def _charts_section(report: dict[str, Any]) -> str:
    return "\n\n".join(report["charts"]) or "_No charts for this task._"


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
