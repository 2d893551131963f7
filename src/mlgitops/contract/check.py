"""The data contract: reading a table, checking it against the contract, summarising it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from mlgitops.contract.spec import NUMERIC_DTYPES, ColumnSpec, ContractParams

logger = logging.getLogger(__name__)

_PANDAS_DTYPES: dict[str, Any] = {
    "float": "float64",
    "int": "Int64",  # nullable integer, so a missing value is not silently a float
    "category": str,
    "bool": "boolean",
    "string": str,
    "date": "datetime64[ns]",
}

# The words a bool column may hold (any case): the check reads them, adoption proposes bool.
BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


_TABLE_CHECKS = {
    "column_in_dataframe": "required column is missing from the table",
    "column_in_schema": "column is not in the contract (strict: true)",
}


class ContractViolation(ValueError):
    """A table does not match the data contract; `report` holds every failure."""

    def __init__(self, message: str, report: dict[str, Any]):
        """Keep the validation report alongside the message."""
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Failure:
    """One check that failed on one column, with a few offending rows."""

    column: str
    check: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """The failure as one sentence, with the first offending rows."""
        rows = [e for e in self.examples if e["row"] is not None]
        if not rows:
            return f"column '{self.column}': {self.check}"
        shown = ", ".join(f"row {e['row']}: {e['value']!r}" for e in rows)
        return f"column '{self.column}' failed {self.check} on {self.count} row(s) ({shown})"


def _column_schema(name: str, spec: ColumnSpec) -> pa.Column:
    checks: list[pa.Check] = []
    if spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    if spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    if spec.categories is not None:
        checks.append(pa.Check.isin(list(spec.categories)))
    if spec.unique and spec.nullable:
        # pandera's `unique` counts missing values as duplicates of each other (and reports
        # them as no failure case at all); a nullable unique column means unique when present.
        checks.append(
            pa.Check(
                lambda s: ~(s.duplicated(keep=False) & s.notna()),
                name="unique_when_present",
                error="values must be unique where present",
            )
        )
    return pa.Column(
        _PANDAS_DTYPES[spec.dtype],
        checks=checks,
        nullable=spec.nullable,
        unique=spec.unique and not spec.nullable,
        coerce=True,
        required=True,
        description=spec.description or None,
        title=name,
    )


def build_schema(contract: ContractParams) -> pa.DataFrameSchema:
    """The pandera schema of the raw table described by `contract`."""
    return pa.DataFrameSchema(
        {name: _column_schema(name, spec) for name, spec in contract.columns.items()},
        strict=contract.strict,
        ordered=False,
        name="raw table",
    )


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a CSV with every cell as text, so typing is the contract's job, not pandas' guess.

    Raises:
        FileNotFoundError: with how to get the default raw data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. Get the raw data with `make data` "
            "(runs `dvc pull`, or writes the default dataset when no remote is reachable)."
        )
    frame = pd.read_csv(path, dtype=str, keep_default_na=True, encoding="utf-8")
    return frame.apply(lambda column: column.str.strip())


def _words_to_bools(frame: pd.DataFrame, contract: ContractParams) -> pd.DataFrame:
    """Map yes/no, true/false and 1/0 to booleans; the contract reports anything else."""
    frame = frame.copy()
    for name, spec in contract.columns.items():
        if spec.dtype == "bool" and name in frame.columns:
            frame[name] = frame[name].map(
                lambda v: BOOL_WORDS.get(v.lower(), v) if isinstance(v, str) else v
            )
    return frame


def _failure_cases(error: SchemaErrors) -> pd.DataFrame:
    """Pandera's failure cases, one per (column, check, row), naming the column that failed."""
    cases = error.failure_cases.copy()
    # Table-level checks name the schema in "column" and the offending column in the case.
    table_level = cases["check"].isin(list(_TABLE_CHECKS))
    cases.loc[table_level, "column"] = cases.loc[table_level, "failure_case"]
    cases.loc[table_level, "check"] = cases.loc[table_level, "check"].map(_TABLE_CHECKS)
    cases["column"] = cases["column"].fillna("<table>").astype(str)
    coerce_failed = set(cases.loc[cases["check"].str.startswith("coerce_dtype"), "column"])
    # A value that could not be coerced also fails the dtype check and makes range checks
    # raise TypeErrors; the coercion failure alone says what is wrong.
    noise = cases["column"].isin(coerce_failed) & ~cases["check"].str.startswith("coerce_dtype")
    return cases[~noise]


def _failures(error: SchemaErrors, examples: int) -> list[Failure]:
    cases = _failure_cases(error)
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        rows = []
        for _, case in group.head(examples).iterrows():
            index = case["index"]
            row = None if index is None or pd.isna(index) else int(index) + 2  # header is line 1
            value = case["failure_case"]
            rows.append({"row": row, "value": None if pd.isna(value) else str(value)})
        failures.append(
            Failure(column=str(column), check=str(check), count=len(group), examples=rows)
        )
    return failures


def summarize(frame: pd.DataFrame, contract: ContractParams) -> dict[str, Any]:
    """Row count, null rates, category counts and numeric summaries, for reports and diffs."""
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        spec = contract.columns.get(name)
        entry: dict[str, Any] = {
            "dtype": spec.dtype if spec else str(series.dtype),
            "role": spec.role if spec else None,
            "null_rate": round(float(series.isna().mean()), 6) if len(series) else 0.0,
        }
        if spec is not None and spec.dtype in NUMERIC_DTYPES:
            values = pd.to_numeric(series, errors="coerce").dropna().astype("float64")
            if len(values):
                entry.update(
                    mean=_round(values.mean()),
                    std=_round(values.std(ddof=0)),
                    min=_round(values.min()),
                    max=_round(values.max()),
                )
        elif spec is not None and spec.dtype in {"category", "bool"}:
            counts = series.dropna().astype(str).value_counts().sort_index()
            entry["categories"] = {str(k): int(v) for k, v in counts.items()}
        columns[name] = entry
    return {"rows": len(frame), "columns": columns}


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def check_table(
    frame: pd.DataFrame, contract: ContractParams, *, examples: int = 5
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Check a text table against the contract and return it typed, with a report.

    Returns:
        The typed table (unchanged when invalid) and a JSON-ready report with `valid`,
        `failures` and a summary of the data.
    """
    schema = build_schema(contract)
    candidate = _words_to_bools(frame, contract)
    try:
        typed = schema.validate(candidate, lazy=True)
        failures: list[Failure] = []
    except SchemaErrors as error:
        typed = frame
        # Never report a table valid that the schema refused, even when pandera gives no
        # failure case to show.
        failures = _failures(error, examples) or [
            Failure(column="<table>", check=str(error).strip().splitlines()[0], count=1)
        ]
    report = {
        "valid": not failures,
        "failures": [
            {"column": f.column, "check": f.check, "count": f.count, "examples": f.examples}
            for f in failures
        ],
        "expected_columns": list(contract.columns),
        "received_columns": list(frame.columns),
        **summarize(frame, contract),
    }
    return typed, report


def violation_message(report: dict[str, Any], source: str) -> str:
    """A human-readable account of every failure in a validation report."""
    lines = [f"{source} violates the data contract ({len(report['failures'])} failed check(s)):"]
    for item in report["failures"]:
        failure = Failure(item["column"], item["check"], item["count"], item["examples"])
        lines.append(f"  - {failure.describe()}")
    return "\n".join(lines)


def load_valid_table(path: Path | str, contract: ContractParams) -> pd.DataFrame:
    """Read a CSV and return it typed by the contract.

    Raises:
        ContractViolation: naming each column and check that failed, with example rows.
    """
    typed, report = check_table(read_table(path), contract)
    if not report["valid"]:
        raise ContractViolation(violation_message(report, str(path)), report)
    return typed


def feature_frame(frame: pd.DataFrame, contract: ContractParams) -> pd.DataFrame:
    """Only the feature columns, in contract order."""
    return frame.loc[:, list(contract.features)]


def target_series(frame: pd.DataFrame, contract: ContractParams) -> pd.Series:
    """The target column as the model sees it: floats for regression, labels as text otherwise."""
    return frame[contract.target].astype("float64" if contract.task == "regression" else str)


def write_table(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a typed table as CSV in a byte-stable way (ISO dates, fixed line endings)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")


def request_schema(contract: ContractParams) -> pa.DataFrameSchema:
    """The schema each row sent for a prediction meets, as the service's request model checks it.

    Only the features are checked (other columns may be present or not); a category the
    model maps to unknown is accepted; a float must be finite; uniqueness is a property of a
    table, not of a row, so it is not checked.
    """
    columns = {}
    for name in contract.features:
        spec = contract.columns[name]
        update: dict[str, Any] = {"unique": False}
        if spec.on_unknown == "map_to_unknown":
            update["categories"] = None
        column = _column_schema(name, spec.model_copy(update=update))
        if spec.dtype == "float":
            column.checks.append(
                pa.Check(
                    lambda s: ~s.isin([math.inf, -math.inf]),
                    name="finite",
                    error="values must be finite",
                )
            )
        columns[name] = column
    return pa.DataFrameSchema(columns, strict=False, ordered=False, name="request rows")


def check_rows(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, contract: ContractParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check each row of a text table against `schema` (see `request_schema`).

    Returns:
        The valid rows, typed by the contract (index kept), and one row per invalid row:
        its index label (`row`) and the first `column` and `check` it failed.
    """
    candidate = _words_to_bools(frame, contract)
    rejected: list[pd.DataFrame] = []
    # A value that cannot be coerced hides the other checks of its column, so the rows left
    # are checked again until they all pass; each round removes at least one row.
    while len(candidate):
        try:
            return schema.validate(candidate, lazy=True), _concat_rejected(rejected)
        except SchemaErrors as error:
            cases = _failure_cases(error)
        # pandera lists a missing value among the values that failed coercion; whether it
        # may be missing is the nullable check's to say.
        cases = cases[
            ~(cases["check"].str.startswith("coerce_dtype") & cases["failure_case"].isna())
        ]
        on_rows = cases[cases["index"].notna()]
        if len(on_rows) < len(cases) or on_rows.empty:
            # A table-level failure (a missing column) fails every row alike.
            first = cases[cases["index"].isna()].iloc[0] if len(on_rows) < len(cases) else None
            column = "<table>" if first is None else str(first["column"])
            check = "rejected by the schema" if first is None else str(first["check"])
            rejected.append(
                pd.DataFrame({"row": candidate.index, "column": column, "check": check})
            )
            break
        first_per_row = on_rows.drop_duplicates("index")
        rejected.append(
            pd.DataFrame(
                {
                    "row": first_per_row["index"].to_numpy(),
                    "column": first_per_row["column"].to_numpy(),
                    "check": first_per_row["check"].astype(str).to_numpy(),
                }
            )
        )
        candidate = candidate.drop(index=pd.Index(first_per_row["index"]))
    return candidate.iloc[:0], _concat_rejected(rejected)


def _concat_rejected(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({"row": [], "column": [], "check": []})
    return pd.concat(parts, ignore_index=True)
