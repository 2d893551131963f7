"""validate: the report is always written; a violation fails the stage, naming the column."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd

from mlgitops.stages import validate

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


def test_valid_data_passes_and_reports(raw_data_path, raw_text, params, tmp_path):
    report = tmp_path / "validation.json"
    code = validate.main(
        [
            "--params",
            str(PARAMS),
            "--data",
            str(raw_data_path),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    written = json.loads(report.read_text())
    assert written["valid"] is True
    assert written["failures"] == []
    assert written["rows"] == len(raw_text), "the report counts every row"
    for name in params.contract.columns:
        has_gaps = bool(raw_text[name].isna().any())
        assert (written["columns"][name]["null_rate"] > 0) == has_gaps, f"null rate of {name}"


def test_violation_fails_after_writing_the_report(raw_data_path, params, tmp_path, caplog):
    broken = tmp_path / "raw.csv"
    frame = pd.read_csv(raw_data_path, dtype=str)
    # A typed column (not free text) refuses a word that is no number, date, bool or category.
    column = next(n for n, s in params.contract.columns.items() if s.dtype != "string")
    frame.loc[4, column] = "heavy"  # CSV line 6: the header is line 1
    frame.to_csv(broken, index=False)
    report = tmp_path / "validation.json"
    with caplog.at_level(logging.ERROR):
        code = validate.main(
            [
                "--params",
                str(PARAMS),
                "--data",
                str(broken),
                "--report",
                str(report),
            ]
        )
    assert code == 1, "a contract violation must fail the stage"
    written = json.loads(report.read_text())
    assert written["valid"] is False
    assert written["failures"][0]["column"] == column
    assert {"row": 6, "value": "heavy"} in written["failures"][0]["examples"]
    assert f"column '{column}'" in caplog.text
    assert "row 6: 'heavy'" in caplog.text


def test_missing_raw_file_says_how_to_get_it(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        code = validate.main(
            [
                "--params",
                str(PARAMS),
                "--data",
                str(tmp_path / "raw.csv"),
                "--report",
                str(tmp_path / "v.json"),
            ]
        )
    assert code == 1
    assert "make data" in caplog.text


def test_params_typo_stops_the_stage_naming_the_key(raw_data_path, tmp_path, caplog):
    params = tmp_path / "params.yaml"
    shutil.copy(PARAMS, params)
    params.write_text(params.read_text().replace("examples_per_failure", "examples_per_falure"))
    with caplog.at_level(logging.ERROR):
        code = validate.main(
            [
                "--params",
                str(params),
                "--data",
                str(raw_data_path),
                "--report",
                str(tmp_path / "v.json"),
            ]
        )
    assert code == 1
    assert "validate.examples_per_falure: unknown key" in caplog.text
