"""The whole `params.yaml`: the pipeline sections plus the operational ones, each from its owner."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict

from mlgitops.config import (
    PipelineParams,
    read_params_file,
    validate_params,
)
from mlgitops.deploy.settings import DeployParams
from mlgitops.layout import PARAMS_PATH
from mlgitops.metrics import METRICS_BY_TASK
from mlgitops.monitor.settings import MonitorParams
from mlgitops.report.settings import GatesParams
from mlgitops.scoring.settings import ScoreParams
from mlgitops.serving.settings import ServeParams


class Params(PipelineParams):
    """Everything in `params.yaml`: what the CLI, report, packaging, deploy, monitor, score read."""

    gates: GatesParams = GatesParams()
    serve: ServeParams = ServeParams()
    deploy: DeployParams = DeployParams()
    monitor: MonitorParams = MonitorParams()
    score: ScoreParams = ScoreParams()

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def cross_section_problems(self) -> list[str]:
        """The pipeline's cross-section problems and those of the gates, listed together."""
        return [*super().cross_section_problems(), *_gates_problems(self)]


def _gates_problems(params: Params) -> list[str]:
    """Gate rules on metrics the task lacks, or needing an interval the headline lacks."""
    task = params.contract.task
    allowed = METRICS_BY_TASK[task]
    problems: list[str] = []
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
    return problems


def parse_params(raw: object, *, source: str = "params") -> Params:
    """Validate an already-loaded params mapping.

    Raises:
        ParamsError: naming every key that is unknown, missing or of the wrong type.
    """
    return validate_params(Params, raw, source=source)


def load_params(path: Path | str = PARAMS_PATH) -> Params:
    """Read and validate `params.yaml`.

    Raises:
        ParamsError: when the file is missing, is not YAML, or does not match the sections.
    """
    return parse_params(read_params_file(path), source=str(path))
