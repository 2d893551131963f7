"""Drift between logged requests and the training data, measured with Evidently.

Per feature, Evidently's default test for the column's type and size (Kolmogorov-Smirnov
for numbers, chi-square or a Z-test for categories, on small samples) gives a p-value; the
predicted-class distribution is tested against the training labels the same way; missing
rates are compared with the training data's.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlgitops.contract import NUMERIC_DTYPES, ContractParams
from mlgitops.markdown import fmt
from mlgitops.monitor.settings import MonitorParams
from mlgitops.prediction_log import LogError
from mlgitops.prediction_store import PredictionStore, Window, window_text

logger = logging.getLogger(__name__)

PREDICTION = "prediction"


@dataclass(frozen=True)
class DriftResult:
    """The verdict, its JSON summary and Evidently's snapshot (for the HTML report)."""

    drift_found: bool
    summary: dict[str, Any]
    snapshot: Any


def _typed(frame: pd.DataFrame, contract: ContractParams, columns: list[str]) -> pd.DataFrame:
    typed = pd.DataFrame(index=frame.index)
    for name in columns:
        spec = contract.columns.get(name)
        series = frame[name] if name in frame else pd.Series(None, index=frame.index)
        if spec is not None and spec.dtype in NUMERIC_DTYPES:
            typed[name] = pd.to_numeric(series, errors="coerce").astype(float)
        else:
            typed[name] = series.astype(object).mask(series.isna(), None)
    return typed


def select_window(
    store: PredictionStore, model_md5: str, *, rows: int
) -> tuple[Window, dict[str, int]]:
    """The newest `rows` logged records of model `model_md5`, and the count of every model seen.

    Raises:
        LogError: when the log holds no usable record, or none from `model_md5`.
    """
    counts = store.model_counts()
    if not counts:
        logs = store.files_summary()
        raise LogError(
            f"the prediction log under {store.log_dir} holds no usable record: "
            f"{logs['files']} file(s), {len(logs['empty_files'])} empty, "
            f"{logs['corrupt_lines']} corrupt line(s)"
        )
    if model_md5 not in counts:
        seen = ", ".join(f"{md5} ({n} records)" for md5, n in counts.items())
        raise LogError(
            f"the prediction log holds no prediction of the reference model {model_md5} "
            f"(artifacts/model.joblib in dvc.lock); it holds predictions of {seen}. "
            "Compare logs with the training data of the model that served them: check out "
            "the commit that was deployed, or pass --model-md5."
        )
    others = {md5: n for md5, n in counts.items() if md5 != model_md5}
    if others:
        logger.warning("ignoring %d record(s) of other models: %s", sum(others.values()), others)
    window = store.newest_predictions(model_md5, rows=rows)
    if window.used < window.available:
        logger.info(
            "drift on the newest %d of %d predictions (monitor.window_rows)",
            window.used,
            window.available,
        )
    return window, counts


def _dataset(frame: pd.DataFrame, numerical: list[str], categorical: list[str]) -> Any:
    from evidently import DataDefinition, Dataset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    return Dataset.from_pandas(frame, data_definition=definition)


def measure_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    contract: ContractParams,
    params: MonitorParams,
) -> DriftResult:
    """Compare logged requests with the training rows.

    Args:
        current: logged records: the contract's features and `prediction`.
        reference: training rows: the contract's features and its target.
        contract: the data contract (feature names and types, the target).
        params: the `monitor` thresholds.

    Returns:
        Whether drift was found, a JSON-ready summary and the Evidently snapshot.

    Raises:
        LogError: with fewer than `params.min_rows` logged records.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry
    from evidently import Report
    from evidently.metrics import DriftedColumnsCount, MissingValueCount, ValueDrift

    if len(current) < params.min_rows:
        raise LogError(
            f"only {len(current)} logged prediction(s); at least monitor.min_rows="
            f"{params.min_rows} are needed to judge drift"
        )
    features = list(contract.features)
    numerical = [c for c in features if contract.columns[c].dtype in NUMERIC_DTYPES]
    categorical = [c for c in features if c not in numerical]
    regression = contract.task == "regression"
    (numerical if regression else categorical).append(PREDICTION)
    reference = reference.rename(columns={contract.target: PREDICTION})
    columns = [*features, PREDICTION]
    cur = _typed(current, contract, features).assign(
        **{PREDICTION: current[PREDICTION].astype(float if regression else str)}
    )
    ref = _typed(reference, contract, features).assign(
        **{PREDICTION: reference[PREDICTION].astype(float if regression else str)}
    )
    # Evidently cannot test a column with no value on one side; such a column drifted.
    testable = [c for c in features if cur[c].notna().any() and ref[c].notna().any()]
    # The order of the HTML report: the overall count, predictions, features, missing values.
    metrics: list[Any] = [
        DriftedColumnsCount(columns=testable, drift_share=params.drift_share),
        ValueDrift(column=PREDICTION, threshold=params.prediction_p_value),
    ]
    metrics += [ValueDrift(column=c, threshold=params.feature_p_value) for c in testable]
    metrics += [MissingValueCount(column=c) for c in features]
    snapshot = Report(metrics).run(
        _dataset(cur[columns], numerical, categorical),
        _dataset(ref[columns], numerical, categorical),
    )
    reference_missing = ref[features].isna().mean()
    values: dict[tuple[str, str | None], Any] = {}
    for item in snapshot.dict()["metrics"]:
        config = item["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        values[(kind, config.get("column"))] = (config, item["value"])

    per_feature = []
    for name in features:
        config, p_value = values.get(("ValueDrift", name), ({"method": "(all missing)"}, 0.0))
        _, missing = values[("MissingValueCount", name)]
        increase = float(missing["share"]) - float(reference_missing[name])
        per_feature.append(
            {
                "feature": name,
                "method": config.get("method"),
                "p_value": round(float(p_value), 6),
                "drifted": float(p_value) < params.feature_p_value,
                "missing_rate": round(float(missing["share"]), 4),
                "reference_missing_rate": round(float(reference_missing[name]), 4),
                "missing_rate_alert": increase > params.max_missing_rate_increase,
            }
        )
    drifted = [f["feature"] for f in per_feature if f["drifted"]]
    share = len(drifted) / len(features)
    config, p_value = values[("ValueDrift", PREDICTION)]
    prediction = {
        "method": config.get("method"),
        "p_value": round(float(p_value), 6),
        "shifted": float(p_value) < params.prediction_p_value,
        "current": _distribution(cur[PREDICTION], regression),
        "reference": _distribution(ref[PREDICTION], regression),
    }
    missing_alerts = [f["feature"] for f in per_feature if f["missing_rate_alert"]]
    reasons = []
    if share >= params.drift_share:
        reasons.append(f"{len(drifted)} of {len(features)} features drifted ({share:.0%})")
    if prediction["shifted"]:
        reasons.append(f"prediction distribution shifted (p={prediction['p_value']:.2g})")
    if missing_alerts:
        reasons.append(f"missing rate rose in {', '.join(missing_alerts)}")
    summary = {
        "drift_found": bool(reasons),
        "reasons": reasons,
        "rows": {"current": len(cur), "reference": len(ref)},
        "drift_share": round(share, 4),
        "drifted_features": drifted,
        "features": per_feature,
        "prediction": prediction,
        "thresholds": params.model_dump(exclude={"decay", "retention_days", "window_rows"}),
    }
    return DriftResult(drift_found=bool(reasons), summary=summary, snapshot=snapshot)


def _distribution(series: pd.Series, regression: bool) -> dict[str, float]:
    if regression:
        return {"mean": round(float(series.mean()), 6), "std": round(float(series.std()), 6)}
    return {str(k): round(float(v), 4) for k, v in series.value_counts(normalize=True).items()}


def markdown(summary: dict[str, Any]) -> str:
    """The drift summary as markdown, for the job summary and the retraining PR."""
    verdict = (
        "**Drift found**: " + "; ".join(summary["reasons"])
        if summary["drift_found"]
        else ("**No drift found.**")
    )
    lines = [
        "## Drift: logged requests vs training data",
        "",
        verdict,
        "",
        f"{summary['rows']['current']} logged predictions of model "
        f"`{summary.get('model_md5', '?')}` against {summary['rows']['reference']} training rows"
        f"{window_text(summary.get('window'), 'predictions')}.",
        "",
        "| feature | test | p-value | drifted | missing rate | training missing rate |",
        "|---|---|---:|:---:|---:|---:|",
    ]
    for f in summary["features"]:
        lines.append(
            f"| {fmt(f['feature'])} | {fmt(f['method'])} | {f['p_value']:.4g} | "
            f"{'yes' if f['drifted'] else 'no'} | {f['missing_rate']:.1%}"
            f"{' (alert)' if f['missing_rate_alert'] else ''} | "
            f"{f['reference_missing_rate']:.1%} |"
        )
    p = summary["prediction"]
    lines += [
        "",
        f"Prediction distribution ({p['method']}): p={p['p_value']:.4g}, "
        f"{'shifted' if p['shifted'] else 'not shifted'}.",
        "",
        "| prediction | logged share | training share |",
        "|---|---:|---:|",
    ]
    for key in sorted(set(p["current"]) | set(p["reference"])):
        lines.append(
            f"| {fmt(key)} | {p['current'].get(key, 0.0):.3f} | "
            f"{p['reference'].get(key, 0.0):.3f} |"
        )
    logs = summary.get("logs")
    if logs:
        lines += [
            "",
            f"Log: {logs['files']} file(s), {logs['records']} records, "
            f"{len(logs['empty_files'])} empty file(s), {logs['corrupt_lines']} corrupt "
            "line(s) skipped.",
        ]
    return "\n".join(lines) + "\n"


def prometheus_text(summary: dict[str, Any]) -> str:
    """Drift gauges in Prometheus' text format (for node_exporter's textfile collector)."""
    md5 = summary.get("model_md5", "")
    return (
        "# HELP mlgitops_drift_share Share of features whose distribution drifted\n"
        "# TYPE mlgitops_drift_share gauge\n"
        f'mlgitops_drift_share{{model_md5="{md5}"}} {summary["drift_share"]}\n'
        "# HELP mlgitops_drift_detected 1 when the last drift check found drift\n"
        "# TYPE mlgitops_drift_detected gauge\n"
        f'mlgitops_drift_detected{{model_md5="{md5}"}} {int(summary["drift_found"])}\n'
    )


def write_outputs(result: DriftResult, output_dir: Path) -> list[Path]:
    """Write drift.json, drift.md, drift.html and drift.prom into `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / "drift.json",
        "md": output_dir / "drift.md",
        "html": output_dir / "drift.html",
        "prom": output_dir / "drift.prom",
    }
    paths["json"].write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(result.summary), encoding="utf-8")
    result.snapshot.save_html(str(paths["html"]))
    paths["prom"].write_text(prometheus_text(result.summary), encoding="utf-8")
    return list(paths.values())
