"""What every stage's `main` shares: argument parsing basics, error handling, JSON output."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from mlgitops.contract.check import ContractViolation
from mlgitops.layout import PARAMS_PATH, STAGE_RUNS_DIR
from mlgitops.logs import configure_logging
from mlgitops.sections import ParamsError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INVALID_INPUT = 1


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--params` option every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params",
        type=Path,
        default=PARAMS_PATH,
        help="params file (default: %(default)s)",
    )
    return parser


def run_stage(name: str, body: Callable[[], None]) -> int:
    """Run a stage body; bad params, bad data or a missing input end it with a clear message."""
    configure_logging()
    started = time.time()
    try:
        body()
    except (ParamsError, ContractViolation, FileNotFoundError) as error:
        logger.error("stage '%s' stopped: %s", name, error)
        return EXIT_INVALID_INPUT
    write_json(
        STAGE_RUNS_DIR / f"{name}.json",
        {
            "stage": name,
            "seconds": round(time.time() - started, 2),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return EXIT_OK


def write_json(path: Path | str, payload: Any) -> None:
    """Write JSON byte-stably: fixed indentation, a trailing newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_model(path: Path | str) -> Any:
    """Load the trained pipeline written by the train stage."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `dvc repro train` first")
    return joblib.load(path)
