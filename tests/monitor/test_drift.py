"""Drift between logged traffic and the training data: found when shifted, not otherwise."""

from __future__ import annotations

import json
import re
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prediction_logs import MODEL_MD5, log_record, write_log

from mlgitops.cli import main
from mlgitops.monitor.drift import markdown, measure_drift, select_window
from mlgitops.prediction_log import LogError, read_predictions
from mlgitops.prediction_store import open_store

FPR_SEEDS = 30
MAX_FALSE_POSITIVE_RATE = 0.1


def test_drift_is_found_on_shifted_traffic(traffic, reference, params, seed):
    # Given traffic whose numeric features moved by one standard deviation, when drift is
    # measured, then it is found, with most features and the reason named.
    current = pd.DataFrame(traffic(seed=seed, shift=1.0))
    result = measure_drift(current, reference, contract=params.contract, params=params.monitor)
    assert result.drift_found, f"no drift found on shifted traffic: {result.summary}"
    assert result.summary["drift_share"] >= params.monitor.drift_share, "too few features drifted"
    assert any("features drifted" in r for r in result.summary["reasons"]), "reason not named"


def test_drift_is_not_found_on_unshifted_traffic(traffic, reference, params, seed):
    # Given held-out rows sent as they are, when drift is measured, then none is found.
    current = pd.DataFrame(traffic(seed=seed))
    result = measure_drift(current, reference, contract=params.contract, params=params.monitor)
    assert not result.drift_found, f"false alarm: {result.summary['reasons']}"


@pytest.mark.slow  # a statistical sweep: drift measured over many seeds
def test_false_positive_rate_over_many_seeds_is_low(traffic, reference, params, seed):
    # Given unshifted traffic drawn with many seeds, when drift is measured each time, then it
    # is reported in at most 10% of them (200 seeds measured 0%: see the monitor README), and
    # a half-std shift is found in nearly all of them.
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, size=FPR_SEEDS).tolist()
    alarms = [
        measure_drift(
            pd.DataFrame(traffic(seed=s)),
            reference,
            contract=params.contract,
            params=params.monitor,
        ).drift_found
        for s in seeds
    ]
    rate = float(np.mean(alarms))
    assert rate <= MAX_FALSE_POSITIVE_RATE, f"false-positive rate {rate:.0%} over {FPR_SEEDS} seeds"
    found = [
        measure_drift(
            pd.DataFrame(traffic(seed=s, shift=0.5)),
            reference,
            contract=params.contract,
            params=params.monitor,
        ).drift_found
        for s in seeds[:10]
    ]
    assert np.mean(found) >= 0.9, f"a 0.5-std shift was found in only {np.mean(found):.0%}"


def test_prediction_shift_alone_is_found(traffic, reference, params, seed):
    # Given unshifted features but every prediction the same class, when drift is measured,
    # then the prediction distribution is reported as shifted.
    records = traffic(seed=seed)
    only = reference[params.contract.target].iloc[0]
    current = pd.DataFrame([{**r, "prediction": only} for r in records])
    result = measure_drift(current, reference, contract=params.contract, params=params.monitor)
    assert result.summary["prediction"]["shifted"], "prediction shift not found"
    assert result.drift_found, "a prediction shift must count as drift"


def test_missing_rate_rise_is_found(traffic, reference, params, seed):
    # Given traffic where one feature is always missing, when drift is measured, then its
    # missing rate raises an alert.
    feature = params.contract.numeric_features[0]
    current = pd.DataFrame(traffic(seed=seed)).assign(**{feature: None})
    result = measure_drift(current, reference, contract=params.contract, params=params.monitor)
    entry = next(f for f in result.summary["features"] if f["feature"] == feature)
    assert entry["missing_rate"] == 1.0, f"missing rate is {entry['missing_rate']}"
    assert entry["missing_rate_alert"], "no missing-rate alert"
    assert result.drift_found, "a missing-rate alert must count as drift"


def test_too_few_rows_is_no_verdict(traffic, reference, params, seed):
    # Given fewer logged predictions than monitor.min_rows, then drift refuses to judge.
    current = pd.DataFrame(traffic(seed=seed, count=params.monitor.min_rows - 1))
    with pytest.raises(LogError, match="min_rows"):
        measure_drift(current, reference, contract=params.contract, params=params.monitor)


def test_logs_of_another_model_get_a_clear_message(tmp_path, traffic, seed):
    # Given a log whose every record comes from another model, when its records are selected
    # for the reference model, then the error names both hashes.
    write_log(tmp_path, traffic(seed=seed, count=5))
    with open_store(tmp_path) as store, pytest.raises(LogError) as raised:
        select_window(store, "f" * 32, rows=10)
    message = str(raised.value)
    assert "f" * 32 in message, f"reference hash not named: {message}"
    assert MODEL_MD5 in message, f"logged model's hash not named: {message}"
    assert "--model-md5" in message, f"no way out named: {message}"


def test_cli_writes_markdown_html_json_and_exits_1_on_drift(
    tmp_path, traffic, artifacts, seed, capsys
):
    # Given a shifted log with one corrupt line and one empty file, when `mlgitops monitor
    # drift` runs, then it exits 1 and writes the four outputs, counting the corrupt line.
    first, second = (traffic(seed=seed + i, shift=1.0, count=80) for i in range(2))
    log = write_log(tmp_path / "logs", first)
    with log.open("a") as handle:
        handle.write('{"truncated": \n')
    write_log(tmp_path / "logs", second, "data.1.log")
    (log.parent / "data.2.log").touch()
    out = tmp_path / "out"
    code = main(
        [
            "monitor",
            "drift",
            "--logs",
            str(tmp_path / "logs"),
            "--reference",
            str(artifacts / "train.csv"),
            "--model-md5",
            MODEL_MD5,
            "--output-dir",
            str(out),
        ]
    )
    assert code == 1, f"exit code {code} on drift"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["drift.html", "drift.json", "drift.md", "drift.prom"], names
    summary = json.loads((out / "drift.json").read_text())
    assert summary["logs"]["corrupt_lines"] == 1, "the corrupt line was not counted"
    assert summary["logs"]["records"] == len(first) + len(second), (
        "records of the corrupt file were dropped"
    )
    assert len(summary["logs"]["empty_files"]) == 1, "the empty file was not reported"
    assert "<html" in (out / "drift.html").read_text().lower(), "drift.html is not HTML"
    assert "Drift found" in (out / "drift.md").read_text(), "markdown has no verdict"
    assert "DRIFT" in capsys.readouterr().out, "no verdict printed"


def test_cli_exits_0_without_drift_and_2_on_bad_input(tmp_path, traffic, artifacts, seed):
    # Given an unshifted log, then exit 0; given only empty or corrupt files, or logs of
    # another model, then exit 2.
    write_log(tmp_path / "good", traffic(seed=seed))
    base = ["--reference", str(artifacts / "train.csv"), "--output-dir", str(tmp_path / "o")]
    good = ["monitor", "drift", "--logs", str(tmp_path / "good"), *base]
    assert main([*good, "--model-md5", MODEL_MD5]) == 0, "drift on unshifted traffic"
    assert main([*good, "--model-md5", "e" * 32]) == 2, "another model's logs were judged"
    bad = write_log(tmp_path / "bad", [])
    bad.write_text("not json\n{}\n")
    assert main(["monitor", "drift", "--logs", str(tmp_path / "bad"), *base]) == 2, "corrupt"
    assert main(["monitor", "drift", "--logs", str(tmp_path / "none"), *base]) == 2, "no logs"


def test_corrupt_lines_are_skipped_and_counted_per_file(tmp_path):
    # Given a file with good lines around corrupt ones, when it is read, then the good lines
    # are kept and each corrupt line number is reported.
    good = [log_record({"Island": "Dream"}, "x") for _ in range(3)]
    path = write_log(tmp_path, good[:1])
    with path.open("a") as handle:
        handle.write("garbage\n")
        handle.write(json.dumps({"prediction_id": "no timestamp"}) + "\n")
        handle.write(json.dumps(good[1]) + "\n" + json.dumps(good[2]) + "\n")
    read = read_predictions(tmp_path)
    assert len(read.frame) == 3, f"kept {len(read.frame)} of 3 good records"
    assert read.files[0].corrupt_lines == [2, 3], f"corrupt lines {read.files[0].corrupt_lines}"


names = st.text(alphabet=string.ascii_letters + " |-_:()", min_size=1, max_size=12)


@settings(max_examples=50, deadline=None)
@given(st.lists(names, min_size=1, max_size=4, unique=True), names)
def test_markdown_tables_keep_their_columns_whatever_the_names(features, method):
    # Given any contract column names, class labels and test names (a pipe included), when the
    # summary is rendered, then every table row has as many cells as its header.
    summary = {
        "drift_found": True,
        "reasons": ["a reason"],
        "rows": {"current": 40, "reference": 200},
        "model_md5": MODEL_MD5,
        "features": [
            {
                "feature": name,
                "method": method,
                "p_value": 0.01,
                "drifted": True,
                "missing_rate": 0.0,
                "missing_rate_alert": False,
                "reference_missing_rate": 0.0,
            }
            for name in features
        ],
        "prediction": {
            "method": method,
            "p_value": 0.5,
            "shifted": False,
            "current": {name: 1 / len(features) for name in features},
            "reference": {name: 1 / len(features) for name in features},
        },
    }
    header_cells = None
    for line in markdown(summary).splitlines():
        if not line.startswith("|"):
            header_cells = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        header_cells = header_cells or cells
        assert cells == header_cells, f"a row of the table has {cells - 1} cells: {line!r}"
