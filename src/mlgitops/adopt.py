"""`mlgitops init --data my.csv`: propose a contract and params for a new table, track it."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlgitops.contract import NUMERIC_DTYPES, Task
from mlgitops.contract.check import BOOL_WORDS, check_table, read_table, violation_message
from mlgitops.layout import RAW_DATA_PATH
from mlgitops.params import Params, parse_params
from mlgitops.split import SplitError, check_stratifiable
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

# A text column with at most this many distinct values (and repeats) is a category.
MAX_CATEGORIES = 30
# An integer target with at most this many classes is classification unless --task says not.
MAX_INTEGER_CLASSES = 20
HEADLINE: dict[str, tuple[str, ...]] = {
    "classification": ("balanced_accuracy_score", "macro_f1_score", "log_loss"),
    "regression": ("r2_score", "mean_absolute_error", "root_mean_squared_error"),
}
_ID_NAME = re.compile(r"(^|[\s_\-])(id|identifier|uuid|key)$|^id[\s_\-]", re.IGNORECASE)
# Names that say a column holds personal data: never a feature, never logged.
_PERSONAL_NAME = re.compile(
    r"e-?mail|phone|address|name|comment|note|remark|ssn|passport|birth", re.IGNORECASE
)
_INT = re.compile(r"^[+-]?\d+$")


class AdoptError(ValueError):
    """The table cannot be adopted as given: the message says what to change."""


@dataclass(frozen=True)
class Proposal:
    """A proposed contract section and, per column, why it was typed so (for the review)."""

    contract: dict[str, Any]
    reasons: dict[str, str]


def _bool_words(values: pd.Series) -> bool:
    words = {v.lower() for v in values}
    # 0/1 alone reads better as an int; a bool needs words such as true/false or yes/no.
    return words <= set(BOOL_WORDS) and not words <= {"0", "1"}


def _is_date(values: pd.Series) -> bool:
    if not values.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    return bool(pd.to_datetime(values, errors="coerce", format="ISO8601").notna().all())


def _number(value: float, dtype: str) -> float | int:
    return int(value) if dtype == "int" else float(value)


def propose_column(name: str, values: pd.Series, *, rows: int) -> tuple[dict[str, Any], str]:
    """The contract entry for one text column and a short reason for the review.

    Args:
        name: the column's name (names such as `id` or `customer_id` suggest an identifier).
        values: the column as text, missing values as NA.
        rows: the table's row count.
    """
    present = values.dropna()
    present = present[present != ""]
    spec: dict[str, Any] = {}
    if len(present) < rows:
        spec["nullable"] = True
    distinct = present.nunique()
    unique = distinct == len(present) and len(present) > 1
    if present.empty:
        return {"dtype": "string", "role": "ignored", "nullable": True}, "always empty"
    if _bool_words(present):
        spec = {"dtype": "bool", **spec}
        reason = "yes/no or true/false words"
    elif present.str.match(_INT).all():
        numbers = present.astype("int64")
        spec = {"dtype": "int", **spec, "min": int(numbers.min()), "max": int(numbers.max())}
        reason = f"whole numbers in [{numbers.min()}, {numbers.max()}]"
        if unique and (_ID_NAME.search(name) or numbers.is_monotonic_increasing):
            spec = {"dtype": "int", "role": "identifier", **spec}
            reason = "distinct whole numbers, a row number or key"
    elif pd.to_numeric(present, errors="coerce").notna().all():
        # Python's float() parses the exact nearest double; pd.to_numeric can be one unit in
        # the last place off, and a min or max one ulp inside the data refuses its own table.
        reals = present.astype(float)
        spec = {"dtype": "float", **spec, "min": float(reals.min()), "max": float(reals.max())}
        reason = f"numbers in [{reals.min():.6g}, {reals.max():.6g}]"
    elif _is_date(present):
        spec = {"dtype": "date", "role": "ignored", **spec}
        reason = "ISO dates: not a feature; usable as prepare.split.time_column"
    elif _PERSONAL_NAME.search(name):
        spec = {"dtype": "string", "role": "personal", **spec}
        reason = "text whose name suggests personal data: never a feature, never logged"
    elif unique and (_ID_NAME.search(name) or distinct > MAX_CATEGORIES):
        spec = {"dtype": "string", "role": "identifier", **spec}
        if not spec.get("nullable"):
            spec["unique"] = True
        reason = "a distinct value on every row"
    elif distinct <= MAX_CATEGORIES and distinct < len(present):
        categories = sorted(present.unique().tolist())
        spec = {"dtype": "category", **spec, "categories": categories}
        reason = f"{distinct} distinct values"
    else:
        spec = {"dtype": "string", "role": "personal", **spec}
        reason = f"free text ({distinct} distinct values): never a feature, never logged"
    if distinct == 1 and spec.get("role", "feature") == "feature":
        spec["role"] = "ignored"
        reason = "one value on every row: nothing to learn from"
    return spec, reason


def _target_spec(
    name: str, spec: dict[str, Any], values: pd.Series, task: Task | None
) -> tuple[dict[str, Any], Task]:
    if spec.get("nullable"):
        raise AdoptError(
            f"the target column '{name}' has {int(values.isna().sum())} missing value(s); "
            "a label is needed on every row: drop those rows from the CSV first"
        )
    dtype = spec["dtype"]
    present = values.dropna()
    if task is None:
        small = present.nunique() <= MAX_INTEGER_CLASSES
        task = (
            "regression"
            if dtype == "float" or (dtype == "int" and not small)
            else ("classification")
        )
    if task == "regression":
        if dtype not in NUMERIC_DTYPES:
            raise AdoptError(
                f"--task regression needs a numeric target, but '{name}' holds text "
                f"(proposed dtype '{dtype}')"
            )
        return {"dtype": dtype, "role": "target", "min": spec["min"], "max": spec["max"]}, task
    if dtype == "float":
        raise AdoptError(
            f"the target '{name}' holds fractional numbers: pass --task regression, or "
            "label the classes with whole numbers or words"
        )
    if dtype in {"int", "bool"}:
        return {"dtype": dtype, "role": "target"}, task
    categories = sorted(present.unique().tolist())
    if len(categories) < 2:
        raise AdoptError(f"the target '{name}' has fewer than two classes: {categories}")
    return {"dtype": "category", "role": "target", "categories": categories}, task


def propose_contract(frame: pd.DataFrame, *, target: str, task: Task | None = None) -> Proposal:
    """A data contract for a text table: dtypes, roles, ranges, categories, nullability.

    Raises:
        AdoptError: when the target is absent or cannot be the target of any task.
    """
    if target not in frame.columns:
        raise AdoptError(f"--target '{target}' is not a column of the table: {list(frame.columns)}")
    columns: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for name in frame.columns:
        spec, reason = propose_column(name, frame[name], rows=len(frame))
        if name == target:
            spec, task = _target_spec(name, spec, frame[name], task)
            reason = f"the target ({task})"
        columns[name] = spec
        reasons[name] = reason
    if not any(s.get("role", "feature") == "feature" for s in columns.values()):
        raise AdoptError(
            "no column could be proposed as a feature (all are identifiers, free text, dates, "
            "constant or the target)"
        )
    return Proposal({"task": task, "strict": True, "columns": columns}, reasons)


def propose_params(contract: dict[str, Any], template: dict[str, Any] | None) -> dict[str, Any]:
    """Params for the contract: generic gates and metrics, no derived features, no slices.

    The sections that do not depend on the data (serve, deploy, monitor) are kept from
    `template` (the current params.yaml) when there is one.
    """
    task = contract["task"]
    headline = list(HEADLINE[task])
    scores = [m for m in headline if m.endswith("_score")]
    losses = [m for m in headline if not m.endswith("_score")]
    kept = {k: v for k, v in (template or {}).items() if k in {"serve", "deploy", "monitor"}}
    monitor = dict(kept.get("monitor", {}))
    if isinstance(monitor.get("decay"), dict):
        monitor["decay"] = {**monitor["decay"], "metric": None}
    if monitor:
        kept["monitor"] = monitor
    latency = (template or {}).get("gates", {}).get("latency_budget_ms_per_row", 100.0)
    return {
        "seed": (template or {}).get("seed", 42),
        "contract": contract,
        "validate": {"examples_per_failure": 5},
        "prepare": {
            "drop_duplicate_rows": True,
            "split": {
                "method": "random",
                "test_size": 0.2,
                "stratify": task == "classification",
                "time_column": None,
            },
        },
        "train": {
            "derived_features": {},
            "estimator": {"name": "random_forest", "n_estimators": 200, "min_samples_leaf": 1},
        },
        "evaluate": {
            "headline": headline,
            "bootstrap": {"n_resamples": 1000, "confidence": 0.95},
            "slices": [],
            "calibration_bins": 5,
        },
        "explain": {"max_rows": 500, "background_rows": 100},
        "gates": {
            "mode": "enforce",
            "floors": {},
            "max_regression": {m: {"relative": 0.5} for m in losses},
            "non_inferiority": {m: {"margin": 0.02} for m in scores},
            "latency_budget_ms_per_row": latency,
        },
        **kept,
    }


HEADER = """\
# Proposed by `mlgitops init` from {data}: review every column below (dtype, role, min/max,
# categories, nullable), then `make repro`. See README, "Adopt it for your own data".
"""


def write_params(params: dict[str, Any], path: Path, *, data: str) -> None:
    """Write params as YAML (column names kept as written, non-ASCII included)."""
    text = yaml.safe_dump(params, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(HEADER.format(data=data) + text, encoding="utf-8")


def review_lines(proposal: Proposal) -> list[str]:
    """What the user should check, one line per column."""
    lines = [f"task: {proposal.contract['task']}"]
    for name, spec in proposal.contract["columns"].items():
        role = spec.get("role", "feature")
        null = ", nullable" if spec.get("nullable") else ""
        lines.append(f"  {name!r}: {spec['dtype']}, {role}{null} ({proposal.reasons[name]})")
    return lines


def _check_split(
    frame: pd.DataFrame, parsed: Params, proposal: Proposal, *, inferred: bool
) -> None:
    """Refuse a table the proposed split cannot split, before `dvc repro` would."""
    split = parsed.prepare.split
    if proposal.contract["task"] != "classification" or not split.stratify:
        return
    target = parsed.contract.target
    fix = "add rows, or drop or merge the rare classes in the CSV"
    if inferred and proposal.contract["columns"][target]["dtype"] == "int":
        fix += (
            f"; '{target}' was read as classification because it holds at most "
            f"{MAX_INTEGER_CLASSES} distinct whole numbers: if it is a quantity, adopt it with "
            "--task regression (make adopt ... TASK=regression)"
        )
    try:
        # prepare drops duplicate rows before it splits; count the classes it will see.
        rows = frame.drop_duplicates() if parsed.prepare.drop_duplicate_rows else frame
        check_stratifiable(rows[target], test_size=split.test_size, target=target, fix=fix)
    except SplitError as error:
        raise AdoptError(str(error)) from error


def adopt(
    data: Path,
    *,
    target: str,
    task: Task | None,
    repo: Path,
    params_path: Path,
    track: bool = True,
) -> Proposal:
    """Propose the contract and params for `data`, write them, copy and `dvc add` the table.

    The table is copied to data/raw.csv.

    Raises:
        AdoptError: when the table cannot be adopted as given.
        ParamsError: when the proposal does not validate (a defect of the proposal).
    """
    frame = read_table(data)
    proposal = propose_contract(frame, target=target, task=task)
    template_path = repo / params_path
    template = yaml.safe_load(template_path.read_text("utf-8")) if template_path.exists() else None
    params = propose_params(proposal.contract, template if isinstance(template, dict) else None)
    parsed = parse_params(params, source=f"the params proposed for {data}")
    _, report = check_table(frame, parsed.contract)
    if not report["valid"]:
        raise AdoptError(violation_message(report, str(data)))
    _check_split(frame, parsed, proposal, inferred=task is None)
    write_params(params, template_path, data=data.name)
    raw = repo / RAW_DATA_PATH
    if data.resolve() != raw.resolve():
        raw.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, raw)
    if track:
        added = subprocess.run(
            [tool("dvc"), "add", Path(RAW_DATA_PATH).parent.as_posix()],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise AdoptError(f"`dvc add data` failed: {added.stderr.strip()}")
    return proposal
