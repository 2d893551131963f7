"""Stage `validate`: check the raw table against the data contract and report on it."""

from __future__ import annotations

import logging
from pathlib import Path

from mlgitops.config import load_pipeline_params
from mlgitops.contract.check import ContractViolation, check_table, read_table, violation_message
from mlgitops.stages.common import run_stage, stage_parser, write_json

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the stage: check the raw table against the contract; 0 if it holds, else 1."""
    parser = stage_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="raw CSV to check")
    parser.add_argument("--report", type=Path, required=True, help="validation report (JSON)")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_pipeline_params(args.params)
        frame = read_table(args.data)
        _, report = check_table(
            frame, params.contract, examples=params.validate.examples_per_failure
        )
        report = {"source": args.data.as_posix(), **report}
        # Written before failing, so the report and the PR comment can show what broke.
        write_json(args.report, report)
        logger.info("wrote %s (%d rows, valid=%s)", args.report, report["rows"], report["valid"])
        if not report["valid"]:
            raise ContractViolation(violation_message(report, str(args.data)), report)

    return run_stage("validate", body)


if __name__ == "__main__":
    raise SystemExit(main())
