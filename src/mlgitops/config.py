"""The only reader of `params.yaml`: frozen, typed sections that reject unknown keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PARAMS_PATH = Path("params.yaml")

Task = Literal["classification", "regression"]
Dtype = Literal["float", "int", "category", "bool", "string", "date"]
Role = Literal["feature", "target", "identifier", "personal", "ignored"]

FEATURE_DTYPES: frozenset[str] = frozenset({"float", "int", "category", "bool"})
NUMERIC_DTYPES: frozenset[str] = frozenset({"float", "int"})

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy_score",
    "balanced_accuracy_score",
    "macro_f1_score",
    "roc_auc_ovr_score",
    "log_loss",
)
REGRESSION_METRICS: tuple[str, ...] = (
    "r2_score",
    "mean_absolute_error",
    "root_mean_squared_error",
)
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}


class ParamsError(ValueError):
    """`params.yaml` is missing, unreadable or does not match the typed sections."""


class Section(BaseModel):
    """A frozen params section that rejects unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- contract -----------------------------------------------------------------------------


class ColumnSpec(Section):
    """One column of the raw table: its type, its role and what values it may hold."""

    dtype: Dtype
    role: Role = "feature"
    description: str = ""
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    # What the service does with a category it has never seen; training data always rejects it.
    on_unknown: Literal["reject", "map_to_unknown"] = "reject"

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.dtype == "category" and not self.categories:
            raise ValueError("a 'category' column needs a non-empty 'categories' list")
        if self.categories is not None and self.dtype != "category":
            raise ValueError(
                f"'categories' is only allowed with dtype 'category', got '{self.dtype}'"
            )
        if (self.min is not None or self.max is not None) and self.dtype not in NUMERIC_DTYPES:
            raise ValueError(
                f"'min'/'max' are only allowed on float or int columns, got '{self.dtype}'"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        if self.role == "feature" and self.dtype not in FEATURE_DTYPES:
            raise ValueError(
                f"a feature must have dtype one of {sorted(FEATURE_DTYPES)}, got '{self.dtype}'; "
                "declare free text as role 'personal' and dates as role 'ignored'"
            )
        return self


class ContractParams(Section):
    """The data contract: every column of the raw table, the target and the task."""

    task: Task
    strict: bool = True
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _one_target(self) -> ContractParams:
        problems = []
        targets = [name for name, spec in self.columns.items() if spec.role == "target"]
        if len(targets) != 1:
            problems.append(f"exactly one column must have role 'target', got {targets}")
        else:
            target_spec = self.columns[targets[0]]
            if target_spec.nullable:
                problems.append(f"the target column '{targets[0]}' cannot be nullable")
            if self.task == "classification" and target_spec.dtype not in {
                "category",
                "bool",
                "int",
            }:
                problems.append(
                    "a classification target must be category, bool or int, "
                    f"got '{target_spec.dtype}'"
                )
            if self.task == "regression" and target_spec.dtype not in NUMERIC_DTYPES:
                problems.append(
                    f"a regression target must be float or int, got '{target_spec.dtype}'"
                )
        if not self.features:
            problems.append("the contract declares no column with role 'feature'")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _with_role(self, role: Role) -> tuple[str, ...]:
        return tuple(name for name, spec in self.columns.items() if spec.role == role)

    @property
    def target(self) -> str:
        return self._with_role("target")[0]

    @property
    def features(self) -> tuple[str, ...]:
        return self._with_role("feature")

    @property
    def identifiers(self) -> tuple[str, ...]:
        return self._with_role("identifier")

    @property
    def personal(self) -> tuple[str, ...]:
        return self._with_role("personal")

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(c for c in self.features if self.columns[c].dtype in NUMERIC_DTYPES)

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(c for c in self.features if self.columns[c].dtype not in NUMERIC_DTYPES)


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


class LogisticRegressionParams(Section):
    name: Literal["logistic_regression"]
    C: Annotated[float, Field(gt=0)] = 1.0
    max_iter: Annotated[int, Field(ge=1)] = 1000
    class_weight: Literal["balanced"] | None = None


class RidgeParams(Section):
    name: Literal["ridge"]
    alpha: Annotated[float, Field(ge=0)] = 1.0


class RandomForestParams(Section):
    name: Literal["random_forest"]
    n_estimators: Annotated[int, Field(ge=1)] = 200
    max_depth: Annotated[int, Field(ge=1)] | None = None
    min_samples_leaf: Annotated[int, Field(ge=1)] = 1
    max_features: Literal["sqrt", "log2"] | Annotated[float, Field(gt=0, le=1)] | None = "sqrt"
    class_weight: Literal["balanced"] | None = None
    n_jobs: int = 1


class HistGradientBoostingParams(Section):
    name: Literal["hist_gradient_boosting"]
    learning_rate: Annotated[float, Field(gt=0)] = 0.1
    max_iter: Annotated[int, Field(ge=1)] = 100
    max_leaf_nodes: Annotated[int, Field(ge=2)] | None = 31
    max_depth: Annotated[int, Field(ge=1)] | None = None
    min_samples_leaf: Annotated[int, Field(ge=1)] = 20
    l2_regularization: Annotated[float, Field(ge=0)] = 0.0
    class_weight: Literal["balanced"] | None = None


EstimatorParams = Annotated[
    LogisticRegressionParams | RidgeParams | RandomForestParams | HistGradientBoostingParams,
    Field(discriminator="name"),
]

ESTIMATOR_TASKS: dict[str, frozenset[str]] = {
    "logistic_regression": frozenset({"classification"}),
    "ridge": frozenset({"regression"}),
    "random_forest": frozenset({"classification", "regression"}),
    "hist_gradient_boosting": frozenset({"classification", "regression"}),
}


class TrainParams(Section):
    """The estimator, its hyperparameters and the features derived inside the model."""

    estimator: EstimatorParams
    # Name -> pandas expression over raw columns (backticks around names with spaces).
    derived_features: dict[str, str] = {}


class BootstrapParams(Section):
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


class RegressionLimit(Section):
    """How much worse than the comparison a metric may get: an absolute or a relative amount."""

    absolute: Annotated[float, Field(ge=0)] | None = None
    relative: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RegressionLimit:
        if (self.absolute is None) == (self.relative is None):
            raise ValueError("give exactly one of 'absolute' or 'relative'")
        return self


class NonInferiority(Section):
    """Fail only when the whole confidence interval is worse than the comparison by `margin`."""

    margin: Annotated[float, Field(ge=0)] = 0.0


class GatesParams(Section):
    """The quality gate a pull request must pass. Directions come from the metric names."""

    mode: Literal["enforce", "advisory"] = "enforce"
    # Absolute bounds: a minimum for *_score metrics, a maximum for *_error and *_loss.
    floors: dict[str, float] = {}
    max_regression: dict[str, RegressionLimit] = {}
    non_inferiority: dict[str, NonInferiority] = {}
    latency_budget_ms_per_row: Annotated[float, Field(gt=0)] | None = None


class ServeParams(Section):
    """How the BentoML service accepts, limits and explains requests.

    `mlgitops package` stores this section with the model, so a served model always runs
    with the limits that were reviewed alongside it.
    """

    max_records: Annotated[int, Field(ge=1)] = 1000
    max_explain_records: Annotated[int, Field(ge=1)] = 100
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2_000_000
    explain_top_k: Annotated[int, Field(ge=1)] = 5
    # Environment variable holding the accepted API keys, comma-separated.
    api_keys_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "MLGITOPS_API_KEYS"
    # Environment variable holding the key that encrypts the packaged model (64 hex characters);
    # unset or empty: the model is stored unencrypted.
    model_key_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] = "MLGITOPS_MODEL_KEY"
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Merge concurrent /predict requests into one model call (BentoML adaptive batching).
    adaptive_batching: bool = True
    # Longest a request may wait in the batching queue before it is refused with a 503.
    max_batch_latency_ms: Annotated[int, Field(ge=10, le=600_000)] = 10_000
    # Seconds an idle keep-alive connection stays open (`bentoml serve --timeout-keep-alive`):
    # longer than the idle timeouts of clients and load balancers, so they close idle
    # connections first. A server closing one just as a client reuses it resets that request.
    keep_alive_s: Annotated[int, Field(ge=1, le=3600)] = 75
    # Seconds a client has to send a request's whole body, else 408 (the client's error).
    # Below the service's request timeout (60 s), whose 504 counts as a server error.
    body_timeout_s: Annotated[float, Field(gt=0, lt=60)] = 20.0
    # Seconds a client has to send a request's headers once it has started one, else the
    # server closes the connection (a client trickling headers holds no connection for long).
    header_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # fsync each request's prediction-log lines before answering: they then survive a power
    # loss, not only a crash of the server, for one disk flush per request.
    fsync_prediction_log: bool = False


class LocalDeployParams(Section):
    """The `local` target: `bentoml serve` processes behind a proxy on 127.0.0.1."""

    port: Annotated[int, Field(ge=1, le=65535)] = 3000
    ready_timeout_s: Annotated[float, Field(gt=0)] = 180.0


class KubernetesDeployParams(Section):
    """The `kubernetes` target: the kustomize base in `manifests`, rolled out with kubectl."""

    namespace: str | None = None
    endpoint: str | None = None  # the service's base URL, for the smoke test
    deployment: str = "mlgitops"
    manifests: str = "deploy/k8s"
    context: str | None = None
    rollout_timeout_s: Annotated[int, Field(ge=10)] = 300
    api_keys_secret: str | None = "mlgitops-api-keys"


class BentoCloudDeployParams(Section):
    """The `bentocloud` target: `bentoml deploy` to a BentoCloud deployment."""

    deployment: str = "mlgitops"
    cluster: str | None = None
    scaling_min: Annotated[int, Field(ge=0)] | None = None
    scaling_max: Annotated[int, Field(ge=1)] | None = None
    instance_type: str | None = None
    strategy: Literal[
        "RollingUpdate", "Recreate", "RampedSlowRollout", "BestEffortControlledRollout"
    ] = "RollingUpdate"
    secrets: tuple[str, ...] = ("mlgitops-api-keys",)
    timeout_s: Annotated[int, Field(ge=10)] = 1800


class DeployParams(Section):
    """Where `mlgitops deploy` ships the service; one subsection per target."""

    local: LocalDeployParams = LocalDeployParams()
    kubernetes: KubernetesDeployParams = KubernetesDeployParams()
    bentocloud: BentoCloudDeployParams = BentoCloudDeployParams()


# --- monitor ------------------------------------------------------------------------------


class DecayParams(Section):
    """How `mlgitops monitor decay` windows the labelled predictions."""

    # A metric of `evaluate.headline` (it needs a training-time interval); null: the first.
    metric: str | None = None
    window_days: float = Field(default=7.0, gt=0)
    step_days: float = Field(default=1.0, gt=0)
    min_labels: int = Field(default=30, ge=1)
    # Decay: the newest full window is worse than the interval's bound by more than this.
    tolerance: float = Field(default=0.02, ge=0)


class MonitorParams(Section):
    """Drift and decay thresholds and the prediction log's retention."""

    # A feature drifted when Evidently's default test for its type gives p below this.
    feature_p_value: float = Field(default=0.05, gt=0, lt=1)
    # The traffic drifted when at least this share of the features drifted.
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # The predicted-class (or value) distribution shifted when p is below this.
    prediction_p_value: float = Field(default=0.01, gt=0, lt=1)
    # A feature's missing rate may rise this much above the training data's (0.1 = 10 points).
    max_missing_rate_increase: float = Field(default=0.1, ge=0, le=1)
    # Fewer logged predictions than this: too few to judge, so no verdict (exit code 2).
    min_rows: int = Field(default=30, ge=1)
    retention_days: int = Field(default=30, ge=1)
    decay: DecayParams = DecayParams()


class Params(Section):
    """Everything in `params.yaml`."""

    seed: int
    contract: ContractParams
    # Every stage's section is required: DVC refuses a stage whose params section is absent.
    validate_: ValidateParams = Field(alias="validate")
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    explain: ExplainParams
    gates: GatesParams = GatesParams()
    serve: ServeParams = ServeParams()
    deploy: DeployParams = DeployParams()
    monitor: MonitorParams = MonitorParams()

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        problems = _cross_section_problems(self)
        if problems:
            # One error holding every problem, one per line, so a PR sees them all at once.
            raise ValueError("\n".join(problems))
        return self

    @property
    def validate(self) -> ValidateParams:  # type: ignore[override]
        return self.validate_


def _cross_section_problems(params: Params) -> list[str]:
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
    for rule in ("floors", "max_regression", "non_inferiority"):
        for metric in getattr(params.gates, rule):
            if metric not in allowed:
                problems.append(
                    f"gates.{rule}.{metric}: not a metric of a {task} task {list(allowed)}"
                )
    for metric in params.gates.non_inferiority:
        if metric not in params.evaluate.headline:
            problems.append(
                f"gates.non_inferiority.{metric}: needs a confidence interval, so it must "
                f"be one of evaluate.headline {list(params.evaluate.headline)}"
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


def _format_errors(error: ValidationError, source: str) -> str:
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


def parse_params(raw: object, *, source: str = "params") -> Params:
    """Validate an already-loaded params mapping.

    Raises:
        ParamsError: naming every key that is unknown, missing or of the wrong type.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_format_errors(error, source)) from None


def load_params(path: Path | str = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate `params.yaml`.

    Raises:
        ParamsError: when the file is missing, is not YAML, or does not match the sections.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the project root") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return parse_params(raw, source=str(path))
