"""Stage `explain`: SHAP values on the test rows, as mean |SHAP| per original feature."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlgitops.config import ExplainParams, load_pipeline_params
from mlgitops.contract import ContractParams
from mlgitops.contract.check import feature_frame, load_valid_table
from mlgitops.explain import shap_by_feature
from mlgitops.stages.common import load_model, run_stage, stage_parser, write_json

logger = logging.getLogger(__name__)


def mean_abs_shap(
    model: Pipeline,
    frame: pd.DataFrame,
    *,
    contract: ContractParams,
    explain: ExplainParams,
    seed: int,
) -> pd.DataFrame:
    """Mean |SHAP| per original feature over (at most `max_rows`) rows, largest first."""
    features = feature_frame(frame, contract)
    rows = features.sample(n=min(explain.max_rows, len(features)), random_state=seed)
    background = features.sample(n=min(explain.background_rows, len(features)), random_state=seed)
    values, names = shap_by_feature(model, rows, background, seed=seed)
    importance = np.abs(values).mean(axis=(0, 2))
    table = pd.DataFrame({"feature": names, "mean_abs_shap": importance.round(6)})
    return table.sort_values(
        ["mean_abs_shap", "feature"], ascending=[False, True], ignore_index=True
    )


def main(argv: list[str] | None = None) -> int:
    """Run the stage: explain the model on the test rows; 0 on success, 1 on bad input."""
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the fitted pipeline")
    parser.add_argument("--test", type=Path, required=True, help="test rows (CSV)")
    parser.add_argument("--importance", type=Path, required=True, help="output: JSON")
    parser.add_argument("--plot", type=Path, required=True, help="output: plot data (CSV)")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_pipeline_params(args.params)
        frame = load_valid_table(args.test, params.contract)
        model = load_model(args.model)
        table = mean_abs_shap(
            model, frame, contract=params.contract, explain=params.explain, seed=params.seed
        )
        write_json(
            args.importance,
            {
                "model": type(model[-1]).__name__,
                "rows_explained": min(params.explain.max_rows, len(frame)),
                "mean_abs_shap": dict(zip(table["feature"], table["mean_abs_shap"], strict=True)),
            },
        )
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.plot, index=False, lineterminator="\n")
        top = ", ".join(f"{f} ({v:.3f})" for f, v in table.head(3).itertuples(index=False))
        logger.info("explained %d rows; top features: %s", len(frame), top)

    return run_stage("explain", body)


if __name__ == "__main__":
    raise SystemExit(main())
