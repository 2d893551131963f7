"""`mlgitops score` embedded: every row scored or quarantined, the service's answers, reruns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from scoring_inputs import Injected, part_bytes

from mlgitops.cli import main
from mlgitops.contract.check import check_table, feature_frame
from mlgitops.params import Params
from mlgitops.scoring.batch import MARKER, QUARANTINE_DIR, SCORED_DIR, score
from mlgitops.scoring.model import PinnedModel, ScoringError, load_pinned_model


def _read(folder: Path, name: str) -> pd.DataFrame:
    files = sorted((folder / name).glob("*.parquet"))
    if not files:
        return pd.DataFrame({"row_id": pd.Series([], dtype="int64")})
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _positions(scored: pd.DataFrame, quarantined: pd.DataFrame) -> dict[int, int]:
    """Row id -> position in the input: row ids sort as the input does."""
    ids = np.sort(np.concatenate([scored["row_id"], quarantined["row_id"]]))
    return {int(row_id): position for position, row_id in enumerate(ids)}


@pytest.fixture(scope="module")
def scored_output(
    input_csv: Path,
    pinned: PinnedModel,
    partition_bytes: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("scoring-output") / "scores"
    summary = score(str(input_csv), str(output), model=pinned, partition_bytes=partition_bytes)
    return output, summary


def test_every_row_is_scored_or_quarantined(scored_output, injected: Injected):
    # Given a generated table with injected bad rows, scored in several partitions
    output, summary = scored_output
    scored, quarantined = _read(output, SCORED_DIR), _read(output, QUARANTINE_DIR)
    # Then rows in = scored + quarantined, in the summary and in the files
    assert summary["partitions"] > 1, "the input should span several partitions"
    assert summary["rows_in"] == len(injected.table), "rows in counts every input row"
    assert summary["rows_in"] == summary["scored"] + summary["quarantined"], summary
    assert (len(scored), len(quarantined)) == (summary["scored"], summary["quarantined"])
    assert sum(summary["quarantined_by_reason"].values()) == summary["quarantined"]
    # and exactly the injected rows are quarantined, each naming the column made invalid
    positions = _positions(scored, quarantined)
    found = {
        positions[int(r)]: c for r, c in zip(quarantined.row_id, quarantined.column, strict=True)
    }
    assert found == injected.bad_rows, "quarantine holds the injected rows and their columns"
    assert quarantined["check"].str.len().gt(0).all(), "each quarantined row names its check"


def test_predictions_are_the_services(scored_output, injected: Injected, pinned: PinnedModel):
    # Given the valid rows of the input, typed as training typed them
    output, summary = scored_output
    scored = _read(output, SCORED_DIR).sort_values("row_id", ignore_index=True)
    good = injected.table.drop(index=list(injected.bad_rows)).reset_index(drop=True)
    typed, report = check_table(good, pinned.predictor.contract)
    assert report["valid"], report["failures"]
    # When the service's Predictor answers on them
    expected = pinned.predictor.outputs(feature_frame(typed, pinned.predictor.contract))
    # Then batch scoring gave the same answers, stamped with the model and the run
    assert scored["prediction"].tolist() == expected.predictions, "predictions differ"
    if expected.probabilities is None:
        assert "probabilities" not in scored.columns, "a regressor has no probabilities"
    else:
        got = np.stack(scored["probabilities"].to_numpy())
        assert np.array_equal(got, expected.probabilities), "probabilities differ"
        assert summary["classes"] == pinned.predictor.classes.tolist()
    assert set(scored["model_md5"]) == {pinned.md5}, "every row names the model"
    assert set(scored["run_id"]) == {summary["run_id"]}, "every row names the run"


def test_a_rerun_does_not_rewrite_a_complete_output(
    scored_output, input_csv, pinned, partition_bytes
):
    # Given a complete output of this input and model
    output, first = scored_output
    before = {p: p.stat().st_mtime_ns for p in output.rglob("*")}
    # When it is scored again
    again = score(str(input_csv), str(output), model=pinned, partition_bytes=partition_bytes)
    # Then nothing is written, and the summary is the first run's
    assert again["rewritten"] is False, "a complete output is left as it is"
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*")} == before, "files changed"
    assert {k: again[k] for k in first if k != "rewritten"} == {
        k: first[k] for k in first if k != "rewritten"
    }


def test_a_partial_output_is_replaced_never_mixed(
    scored_output, input_csv, pinned, partition_bytes, tmp_path
):
    # Given what a killed run leaves: an output without its marker, holding a stray part, and
    # its temporary sibling
    complete, first = scored_output
    output = tmp_path / "scores"
    shutil.copytree(complete, output)
    (output / MARKER).unlink()
    stray = output / SCORED_DIR / "part-99999.parquet"
    shutil.copy(next((output / SCORED_DIR).glob("*.parquet")), stray)
    leftover = tmp_path / f".scores.partial-{first['run_id']}"
    (leftover / SCORED_DIR).mkdir(parents=True)
    (leftover / SCORED_DIR / "part-00000.parquet").write_bytes(b"half a file")
    # When the input is scored into it
    summary = score(str(input_csv), str(output), model=pinned, partition_bytes=partition_bytes)
    # Then the output is replaced whole: the same bytes as a clean run, the marker back
    assert summary["rewritten"] is True, "a partial output is rewritten"
    assert part_bytes(output) == part_bytes(complete), "the output mixes runs"
    assert not stray.exists(), "a killed run's stray part remains"
    assert not leftover.exists(), "a killed run's temporary folder remains"
    marker = json.loads((output / MARKER).read_text())
    assert marker["rows_in"] == marker["scored"] + marker["quarantined"]


def test_csv_and_parquet_inputs_score_alike(scored_output, injected, pinned, tmp_path):
    # Given the same rows as a Parquet file of text columns
    output, first = scored_output
    parquet = tmp_path / "rows.parquet"
    injected.table.astype("string").to_parquet(parquet, index=False)
    # When it is scored
    summary = score(str(parquet), str(tmp_path / "out"), model=pinned, partition_bytes=1 << 20)
    # Then the counts and the predictions are the CSV's
    assert (summary["scored"], summary["quarantined"]) == (first["scored"], first["quarantined"])
    mine = _read(tmp_path / "out", SCORED_DIR).sort_values("row_id")
    theirs = _read(output, SCORED_DIR).sort_values("row_id")
    assert mine["prediction"].tolist() == theirs["prediction"].tolist()


def test_the_command_writes_the_job_summary(input_csv, trained_project, tmp_path, monkeypatch):
    # Given a GitHub job summary file
    summary_file = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    monkeypatch.chdir(trained_project)
    # When `mlgitops score` runs
    code = main(["score", "--input", str(input_csv), "--output", str(tmp_path / "out")])
    # Then it succeeds, and the summary states the accounting of every row
    assert code == 0
    text = summary_file.read_text()
    marker = json.loads((tmp_path / "out" / MARKER).read_text())
    assert f"rows in {marker['rows_in']:,} = scored {marker['scored']:,}" in text, text
    assert marker["model_md5"] in text


def test_a_model_that_differs_from_dvc_lock_is_refused(trained_project, params: Params, tmp_path):
    # Given a model file other than the one dvc.lock pins
    other = tmp_path / "model.joblib"
    joblib.dump({"not": "the reviewed model"}, other)
    # Then loading it is refused, naming both hashes
    with pytest.raises(ScoringError, match=r"dvc\.lock pins") as error:
        load_pinned_model(trained_project, params.contract, model=other)
    assert "md5" in str(error.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [("rows.json", "expected a CSV"), ("missing.csv", "no input at")],
)
def test_an_input_that_cannot_be_read_is_named(pinned, tmp_path, name, message):
    partition_bytes = 1 << 20
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text("{}")
    with pytest.raises(ScoringError, match=message):
        score(str(path), str(tmp_path / "out"), model=pinned, partition_bytes=partition_bytes)


def test_a_missing_feature_column_quarantines_every_row(injected, pinned, tmp_path):
    # Given the input without one of the features
    missing = pinned.predictor.contract.features[0]
    path = tmp_path / "rows.csv"
    injected.table.drop(columns=[missing]).to_csv(path, index=False)
    # When it is scored
    summary = score(str(path), str(tmp_path / "out"), model=pinned, partition_bytes=1 << 20)
    # Then no row is lost or scored, and the reason names the column
    assert summary["scored"] == 0
    assert summary["quarantined"] == summary["rows_in"] == len(injected.table)
    (reason,) = summary["quarantined_by_reason"]
    assert reason.startswith(f"{missing}: "), reason
