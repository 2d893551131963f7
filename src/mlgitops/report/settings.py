"""The `gates` section of `params.yaml`: the quality gate a pull request must pass."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mlgitops.sections import Section


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
    floors: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, RegressionLimit] = Field(default_factory=dict)
    non_inferiority: dict[str, NonInferiority] = Field(default_factory=dict)
    latency_budget_ms_per_row: Annotated[float, Field(gt=0)] | None = None
