"""`mlgitops monitor ...` and `mlgitops simulate-traffic`: thin wrappers around the monitor."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from mlgitops.github import step_output, step_summary
from mlgitops.layout import DVC_LOCK_PATH, PARAMS_PATH

logger = logging.getLogger(__name__)

NO_DRIFT, DRIFT, CANNOT_JUDGE = 0, 1, 2


def _reference_md5(lock: Path) -> str:
    from mlgitops import layout

    return layout.locked_md5(layout.read_yaml(lock), layout.MODEL_PATH)


def _drift(args: argparse.Namespace) -> int:
    from mlgitops.contract.check import ContractViolation, load_valid_table
    from mlgitops.layout import LayoutError
    from mlgitops.monitor.drift import measure_drift, select_window, write_outputs
    from mlgitops.params import load_params
    from mlgitops.prediction_log import LogError
    from mlgitops.prediction_store import open_store
    from mlgitops.sections import ParamsError

    try:
        params = load_params(args.params)
        md5 = args.model_md5 or _reference_md5(args.lock)
        with open_store(args.logs) as store:
            window, models = select_window(store, md5, rows=params.monitor.window_rows)
            logs = store.files_summary()
        reference = load_valid_table(args.reference, params.contract)
        result = measure_drift(
            window.frame, reference, contract=params.contract, params=params.monitor
        )
    except (ParamsError, LogError, LayoutError, ContractViolation, OSError, sqlite3.Error) as error:
        logger.error("cannot judge drift: %s", error)
        return CANNOT_JUDGE
    result.summary.update(model_md5=md5, models_in_log=models, logs=logs, window=window.summary())
    written = write_outputs(result, args.output_dir)
    logger.info("wrote %s", ", ".join(map(str, written)))
    print(("DRIFT: " + "; ".join(result.summary["reasons"])) if result.drift_found else "no drift")
    return DRIFT if result.drift_found else NO_DRIFT


def _decay(args: argparse.Namespace) -> int:
    from mlgitops.monitor.decay import markdown, measure_decay
    from mlgitops.params import load_params
    from mlgitops.prediction_log import LogError
    from mlgitops.prediction_store import open_store
    from mlgitops.sections import ParamsError

    try:
        params = load_params(args.params)
        training = json.loads(args.metrics.read_text(encoding="utf-8"))
        with open_store(args.logs) as store:
            window = store.newest_labelled(rows=params.monitor.window_rows)
            feedback = store.files_summary("feedback")
        summary = measure_decay(
            window.frame,
            training=training,
            decay=params.monitor.decay,
            evaluate=params.evaluate,
            task=params.contract.task,
        )
    except (ParamsError, LogError, OSError, json.JSONDecodeError, sqlite3.Error) as error:
        logger.error("cannot judge decay: %s", error)
        return CANNOT_JUDGE
    summary["feedback"] = feedback
    summary["window"] = window.summary()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "decay.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    (args.output_dir / "decay.md").write_text(markdown(summary), encoding="utf-8")
    logger.info("wrote %s/decay.json and decay.md", args.output_dir)
    if summary["latest"] is None:
        print(
            f"cannot judge decay: no window has {params.monitor.decay.min_labels} labelled "
            f"predictions (monitor.decay.min_labels); {summary['labelled_predictions']} in all"
        )
        return CANNOT_JUDGE
    print("DECAY" if summary["decay_found"] else "no decay")
    return DRIFT if summary["decay_found"] else NO_DRIFT


def combined_exit(*codes: int) -> int:
    """One exit code for several checks: found (1) wins over cannot judge (2) over none (0)."""
    if DRIFT in codes:
        return DRIFT
    return CANNOT_JUDGE if CANNOT_JUDGE in codes else NO_DRIFT


def _check(args: argparse.Namespace) -> int:
    # Decay runs whatever drift found: drift alone must not hide a model that got worse.
    return combined_exit(_drift(args), _decay(args))


def _prune(args: argparse.Namespace) -> int:
    from mlgitops.params import load_params
    from mlgitops.prediction_store import prune
    from mlgitops.sections import ParamsError

    try:
        days = args.retention_days or load_params(args.params).monitor.retention_days
    except ParamsError as error:
        logger.error("%s", error)
        return CANNOT_JUDGE
    done = prune(args.logs, retention_days=days, now=dt.datetime.now(dt.UTC))
    print(f"older than {days} days in {args.logs}: {done.describe()}")
    return 0


def _forget(args: argparse.Namespace) -> int:
    from mlgitops.prediction_store import forget

    done = forget(args.logs, args.ids)
    for path, count in done.removed.items():
        logger.info("%s: erased %d line(s)", path, count)
    print(f"{len(args.ids)} prediction id(s) erased: {done.describe()}")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from mlgitops.prediction_store import PredictionStore

    with PredictionStore(args.logs) as store:
        indexed = store.reindex()
        counts = store.counts()
    print(
        f"reindexed {indexed} record(s) into {store.path}: {counts['predictions']} "
        f"prediction(s), {counts['feedback']} feedback, {counts['corrupt_lines']} corrupt line(s)"
    )
    return 0


def verdict(output_dir: Path) -> dict[str, Any]:
    """Whether to retrain, from the drift.json and decay.json a monitor run wrote.

    Raises:
        FileNotFoundError: when drift.json is missing (the drift check could not judge).
    """
    drift = json.loads((output_dir / "drift.json").read_text(encoding="utf-8"))
    decay_path = output_dir / "decay.json"
    decay = json.loads(decay_path.read_text(encoding="utf-8")) if decay_path.exists() else {}
    return {
        "drift": bool(drift.get("drift_found")),
        "decay": bool(decay.get("decay_found")),
        "retrain": bool(drift.get("drift_found") or decay.get("decay_found")),
    }


def _verdict(args: argparse.Namespace) -> int:
    try:
        result = verdict(args.output_dir)
    except (FileNotFoundError, json.JSONDecodeError) as error:
        logger.error("no monitor verdict: %s (did `mlgitops monitor drift` fail?)", error)
        return CANNOT_JUDGE
    for name in ("drift.md", "decay.md"):
        if (args.output_dir / name).exists():
            step_summary((args.output_dir / name).read_text(encoding="utf-8"))
    step_output(**{k: str(v).lower() for k, v in result.items()})
    print(" ".join(f"{k}={str(v).lower()}" for k, v in result.items()))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from mlgitops.contract.check import ContractViolation, load_valid_table
    from mlgitops.monitor.traffic import sample_records, send_traffic
    from mlgitops.params import load_params
    from mlgitops.sections import ParamsError

    try:
        params = load_params(args.params)
        # Typed by the contract, so each value is sent as the type the service expects.
        rows = load_valid_table(args.data, params.contract)
    except (ParamsError, ContractViolation, FileNotFoundError) as error:
        logger.error("cannot simulate traffic: %s", error)
        return 1
    records = sample_records(
        rows, params.contract, count=args.count, shift=args.shift, seed=args.seed
    )
    result = send_traffic(
        args.url,
        records,
        api_key=os.environ.get(args.api_key_env, "local-dev-key"),
        batch_size=args.batch_size,
        max_seconds=args.max_seconds,
        progress=not args.no_progress,
    )
    print(
        f"sent {result.sent} records in {result.seconds:.1f} s: {result.ok} predicted, "
        f"{result.failed} failed, {len(records) - result.sent} not sent "
        f"(HTTP statuses {result.status_counts})"
    )
    return 0 if result.ok == len(records) else 1


def _common(parser: argparse.ArgumentParser, *, logs: bool = True) -> None:
    if logs:
        parser.add_argument(
            "--logs", type=Path, required=True, help="the service's MLGITOPS_PREDICTION_LOG_DIR"
        )
    parser.add_argument("--params", type=Path, default=Path(PARAMS_PATH))


def _drift_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, default=Path("artifacts/train.csv"))
    parser.add_argument("--lock", type=Path, default=Path(DVC_LOCK_PATH))
    parser.add_argument("--model-md5", help="the served model's md5 (default: from --lock)")


def _decay_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))


def register(commands: argparse._SubParsersAction) -> None:
    """Add `monitor` (drift, decay, verdict, prune, forget, reindex) and `simulate-traffic`.

    Args:
        commands: the `mlgitops` parser's subcommands.
    """
    monitor = commands.add_parser("monitor", help="drift, decay, retention and erasure")
    actions = monitor.add_subparsers(dest="monitor_command", required=True, metavar="ACTION")

    drift = actions.add_parser(
        "drift", help="logged requests vs training data; exit 1 on drift, 2 when it cannot judge"
    )
    _common(drift)
    _drift_options(drift)
    drift.add_argument("--output-dir", type=Path, default=Path("monitor"))
    drift.set_defaults(handler=_drift)

    decay = actions.add_parser(
        "decay", help="the headline metric on labelled predictions per window; exit 1 on decay"
    )
    _common(decay)
    _decay_options(decay)
    decay.add_argument("--output-dir", type=Path, default=Path("monitor"))
    decay.set_defaults(handler=_decay)

    check = actions.add_parser(
        "check",
        help="drift, then decay whatever drift found; exit 1 if either is found, 2 if one "
        "cannot judge (and neither is found)",
    )
    _common(check)
    _drift_options(check)
    _decay_options(check)
    check.add_argument("--output-dir", type=Path, default=Path("monitor"))
    check.set_defaults(handler=_check)

    result = actions.add_parser(
        "verdict", help="retrain=true|false from drift.json/decay.json, to $GITHUB_OUTPUT"
    )
    result.add_argument("--output-dir", type=Path, default=Path("monitor"))
    result.set_defaults(handler=_verdict)

    prune = actions.add_parser("prune", help="delete log records older than retention_days")
    _common(prune)
    prune.add_argument("--retention-days", type=int, help="default: monitor.retention_days")
    prune.set_defaults(handler=_prune)

    forget = actions.add_parser("forget", help="erase every record of a prediction id")
    _common(forget)
    forget.add_argument(
        "--id", dest="ids", action="append", required=True, help="a prediction id (repeatable)"
    )
    forget.set_defaults(handler=_forget)

    reindex = actions.add_parser(
        "reindex", help="rebuild the prediction store (SQLite) from the JSON-lines log"
    )
    reindex.add_argument(
        "--logs", type=Path, required=True, help="the service's MLGITOPS_PREDICTION_LOG_DIR"
    )
    reindex.set_defaults(handler=_reindex)

    simulate = commands.add_parser(
        "simulate-traffic", help="send held-out rows, optionally shifted, to a running service"
    )
    _common(simulate, logs=False)
    simulate.add_argument("--url", required=True, help="the service's base URL")
    simulate.add_argument("--shift", type=float, default=0.0, help="in standard deviations")
    simulate.add_argument("--data", type=Path, default=Path("artifacts/test.csv"))
    simulate.add_argument("--count", type=int, default=200, help="records to send")
    simulate.add_argument("--batch-size", type=int, default=10)
    simulate.add_argument("--max-seconds", type=float, default=120.0)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--api-key-env", default="MLGITOPS_API_KEY")
    simulate.add_argument("--no-progress", action="store_true")
    simulate.set_defaults(handler=_simulate)
