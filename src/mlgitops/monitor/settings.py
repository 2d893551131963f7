"""The `monitor` section of `params.yaml`: drift and decay thresholds, log retention."""

from __future__ import annotations

from pydantic import Field

from mlgitops.sections import Section


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
    # Drift reads at most this many of the newest predictions of the model, and decay this
    # many of the newest labelled ones: memory and time stay flat however long the log.
    window_rows: int = Field(default=50_000, ge=1)
    decay: DecayParams = DecayParams()
