"""Stage `prepare`: clean the validated table and split it into train and test sets."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from mlgitops.config import PrepareParams, SplitParams, load_pipeline_params
from mlgitops.contract import ContractParams
from mlgitops.contract.check import load_valid_table, write_table
from mlgitops.split import check_stratifiable
from mlgitops.stages.common import run_stage, stage_parser

logger = logging.getLogger(__name__)


def clean(frame: pd.DataFrame, *, prepare: PrepareParams) -> pd.DataFrame:
    """Drop exact duplicate rows (when asked); the index is reset so row order is stable."""
    if prepare.drop_duplicate_rows:
        before = len(frame)
        frame = frame.drop_duplicates()
        if len(frame) < before:
            logger.info("dropped %d duplicate row(s)", before - len(frame))
    return frame.reset_index(drop=True)


def split(
    frame: pd.DataFrame, *, contract: ContractParams, split: SplitParams, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split deterministically: random (stratified for classification) or by time.

    A time split puts the latest `test_size` share of rows (by `time_column`) in the test set,
    so the model is evaluated on data from after the data it learnt from.
    """
    if split.method == "time" and split.time_column is not None:
        ordered = frame.sort_values(split.time_column, kind="stable")
        n_test = max(1, round(len(ordered) * split.test_size))
        return ordered.iloc[:-n_test], ordered.iloc[-n_test:]
    stratify = (
        frame[contract.target] if split.stratify and contract.task == "classification" else None
    )
    if stratify is not None:
        check_stratifiable(
            stratify,
            test_size=split.test_size,
            target=contract.target,
            fix="add rows, drop or merge the rare classes, or set prepare.split.stratify: false",
        )
    train, test = train_test_split(
        frame, test_size=split.test_size, random_state=seed, stratify=stratify
    )
    return train.sort_index(), test.sort_index()


def main(argv: list[str] | None = None) -> int:
    """Run the stage: clean and split the raw table; 0 on success, 1 on bad input."""
    parser = stage_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="raw CSV (validated)")
    parser.add_argument("--train", type=Path, required=True, help="output: training rows")
    parser.add_argument("--test", type=Path, required=True, help="output: test rows")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_pipeline_params(args.params)
        frame = clean(load_valid_table(args.data, params.contract), prepare=params.prepare)
        train, test = split(
            frame, contract=params.contract, split=params.prepare.split, seed=params.seed
        )
        write_table(train, args.train)
        write_table(test, args.test)
        logger.info(
            "split %d rows (%s): %d train -> %s, %d test -> %s",
            len(frame),
            params.prepare.split.method,
            len(train),
            args.train,
            len(test),
            args.test,
        )

    return run_stage("prepare", body)


if __name__ == "__main__":
    raise SystemExit(main())
