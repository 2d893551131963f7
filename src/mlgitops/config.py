"""The pipeline's params: the `params.yaml` sections the DVC stages read, and its reader."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlgitops.contract.spec import NUMERIC_DTYPES, ColumnSpec, ContractParams
from mlgitops.estimators import ESTIMATOR_TASKS, EstimatorParams
from mlgitops.layout import PARAMS_PATH
from mlgitops.metrics import METRICS_BY_TASK
from mlgitops.sections import ParamsError, Section

# --- stages -------------------------------------------------------------------------------


class ValidateParams(Section):
    """How the validate stage reports violations."""

    examples_per_failure: Annotated[int, Field(ge=1, le=100)] = 5


class SplitParams(Section):
    """How rows are split into train and test."""

    method: Literal["random", "time"] = "random"
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    stratify: bool = True
    time_column: str | None = None

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitParams:
        if self.method == "time" and not self.time_column:
            raise ValueError("split method 'time' needs 'time_column'")
        return self


class PrepareParams(Section):
    """Cleaning and the train/test split."""

    split: SplitParams = SplitParams()
    drop_duplicate_rows: bool = True


class TrainParams(Section):
    """The estimator, its hyperparameters and the features derived inside the model."""

    estimator: EstimatorParams
    # Name -> pandas expression over raw columns (backticks around names with spaces).
    derived_features: dict[str, str] = Field(default_factory=dict)


class BootstrapParams(Section):
    """The bootstrap behind the headline metrics' confidence intervals."""

    n_resamples: Annotated[int, Field(ge=100)] = 1000
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95


class EvaluateParams(Section):
    """Which metrics lead the report, their confidence intervals, slices and plots."""

    headline: tuple[str, ...]
    bootstrap: BootstrapParams = BootstrapParams()
    slices: tuple[str, ...] = ()
    calibration_bins: Annotated[int, Field(ge=2, le=50)] = 10


class ExplainParams(Section):
    """How many test rows are explained and how many background rows the explainer uses."""

    max_rows: Annotated[int, Field(ge=1)] = 500
    background_rows: Annotated[int, Field(ge=1)] = 100


class PipelineParams(Section):
    """The sections of `params.yaml` the DVC stages read; nothing else invalidates the pipeline."""

    seed: int
    contract: ContractParams
    # Every stage's section is required: DVC refuses a stage whose params section is absent.
    validate_: ValidateParams = Field(alias="validate")
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    explain: ExplainParams

    # The other sections of the file belong to the whole-file model (`mlgitops.params.Params`),
    # which refuses unknown top-level keys; a stage reads only its own.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @model_validator(mode="after")
    def _cross_section(self) -> Self:
        problems = self.cross_section_problems()
        if problems:
            # One error holding every problem, one per line, so a PR sees them all at once.
            raise ValueError("\n".join(problems))
        return self

    def cross_section_problems(self) -> list[str]:
        """Every disagreement between sections, each as `location: what is wrong`."""
        return _cross_section_problems(self)

    @property
    def validate(self) -> ValidateParams:  # type: ignore[override]
        """The `validate` section (`validate` is a pydantic method name, hence the alias)."""
        return self.validate_


def _cross_section_problems(params: PipelineParams) -> list[str]:
    """Every disagreement between sections, each as `location: what is wrong`."""
    contract = params.contract
    task = contract.task
    problems: list[str] = []
    estimator = params.train.estimator.name
    if task not in ESTIMATOR_TASKS[estimator]:
        problems.append(
            f"train.estimator.name: '{estimator}' does not support task '{task}'; "
            f"for {task} use one of "
            f"{sorted(n for n, tasks in ESTIMATOR_TASKS.items() if task in tasks)}"
        )
    allowed = METRICS_BY_TASK[task]
    unknown = [m for m in params.evaluate.headline if m not in allowed]
    if unknown or not params.evaluate.headline:
        problems.append(
            f"evaluate.headline: must name metrics of a {task} task {list(allowed)}, "
            f"got {unknown or 'none'}"
        )
    for column in params.evaluate.slices:
        spec = contract.columns.get(column)
        if spec is None or spec.dtype not in {"category", "bool"}:
            problems.append(
                f"evaluate.slices: '{column}' must be a category or bool column of the contract"
            )
    split = params.prepare.split
    # The time column only matters to a time split; a random split ignores it.
    if split.method == "time" and split.time_column is not None:
        spec = contract.columns.get(split.time_column)
        if spec is None or spec.dtype != "date":
            problems.append(
                f"prepare.split.time_column: '{split.time_column}' must be a date column "
                "of the contract"
            )
    clashes = set(params.train.derived_features) & set(contract.columns)
    if clashes:
        problems.append(f"train.derived_features: reuse raw column names {sorted(clashes)}")
    else:
        problems.extend(_derived_feature_problems(params.train.derived_features, contract))
    return problems


def _derived_feature_problems(expressions: dict[str, str], contract: ContractParams) -> list[str]:
    """Each expression evaluated on one made-up row of the contract's features.

    This is the check the model does at fit time, made when params are read: a column the
    contract's features lack, or an expression pandas cannot evaluate, is named here.
    """
    if not expressions:
        return []
    import pandas as pd

    def example(spec: ColumnSpec) -> object:
        if spec.dtype in NUMERIC_DTYPES:
            bounds = [b for b in (spec.min, spec.max) if b is not None]
            return sum(bounds) / len(bounds) if bounds else 1.0
        if spec.dtype == "bool":
            return True
        return spec.categories[0] if spec.categories else ""

    row = pd.DataFrame({c: [example(contract.columns[c])] for c in contract.features})
    problems = []
    for name, expression in expressions.items():
        quoted = set(re.findall(r"`([^`]*)`", expression))
        missing = sorted(quoted - set(row.columns))
        if missing:
            problems.append(
                f"train.derived_features.{name}: names {missing}, which are not features of "
                f"the contract (features: {list(row.columns)})"
            )
            continue
        try:
            row[name] = row.eval(expression, engine="python")
        except Exception as error:  # pandas raises many types for a bad expression
            problems.append(
                f"train.derived_features.{name}: {expression!r} cannot be computed from the "
                f"contract's features {list(row.columns)}: {error}"
            )
    return problems


def format_errors(error: ValidationError, source: str) -> str:
    """Every problem of a failed validation, one line each, under a header naming `source`."""
    count = sum(
        len(item["msg"].splitlines()) if item["type"] == "value_error" else 1
        for item in error.errors()
    )
    lines = [f"{source} does not match the expected params ({count} problem(s)):"]
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        # A discriminated union puts the chosen variant's tag in the location; drop it.
        parts = [
            part
            for i, part in enumerate(parts)
            if not (i and parts[i - 1] == "estimator" and part in ESTIMATOR_TASKS)
        ]
        location = ".".join("validate" if part == "validate_" else part for part in parts)
        if item["type"] == "value_error":
            # A validator that collected several problems: one line each. Cross-section
            # problems carry their own location ("section.key: ...").
            for problem in item["msg"].removeprefix("Value error, ").splitlines():
                prefix = "" if not location else f"{location}: "
                lines.append(f"  - {prefix}{problem}")
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown key (is it a typo?)"
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            message = item["msg"]
            if "input" in item and item["type"] not in {"value_error", "assertion_error"}:
                message += f", got {item['input']!r}"
        lines.append(f"  - {location or '<top level>'}: {message}")
    return "\n".join(lines)


def read_params_file(path: Path | str) -> object:
    """The YAML content of a params file, not yet validated.

    Raises:
        ParamsError: when the file is missing or is not YAML.
    """
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the project root") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None


Model = TypeVar("Model", bound=BaseModel)


def validate_params(model: type[Model], raw: object, *, source: str) -> Model:
    """Validate an already-loaded params mapping against `model`.

    Raises:
        ParamsError: naming every key that is unknown, missing or of the wrong type.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(format_errors(error, source)) from None


def load_pipeline_params(path: Path | str = PARAMS_PATH) -> PipelineParams:
    """Read and validate the pipeline sections of `params.yaml`, ignoring the others.

    Raises:
        ParamsError: when the file is missing, is not YAML, or its pipeline sections do not
            match.
    """
    return validate_params(PipelineParams, read_params_file(path), source=str(path))
