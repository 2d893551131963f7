"""Decay: labelled predictions scored over rolling windows and compared with training."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from prediction_logs import log_record, write_log

from helpers import EXAMPLE_PARAMS_PATH
from mlgitops.cli import main
from mlgitops.monitor.decay import measure_decay, rolling_windows
from mlgitops.monitor.settings import DecayParams
from mlgitops.prediction_log import append_feedback
from mlgitops.prediction_store import open_store

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
TRAINING = {
    "accuracy_score": 0.95,
    "balanced_accuracy_score": 0.95,
    "ci": {"balanced_accuracy_score": {"low": 0.9, "high": 1.0, "confidence": 0.95}},
}


def _labelled(days_and_correct: list[tuple[float, bool]]) -> pd.DataFrame:
    rows = []
    for i, (days_ago, correct) in enumerate(days_and_correct):
        truth = ["A", "B"][i % 2]
        rows.append(
            {
                "prediction_id": f"{i:032x}",
                "timestamp": NOW - dt.timedelta(days=days_ago),
                "prediction": truth if correct else {"A": "B", "B": "A"}[truth],
                "label": truth,
            }
        )
    return pd.DataFrame(rows).assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))


def test_rolling_windows_end_at_the_newest_and_step_back():
    # Given timestamps spanning 3 days, when 2-day windows step by 1 day, then there are 4
    # windows ending at newest-3d ... newest, oldest first, each 2 days long.
    stamps = pd.Series(pd.to_datetime([NOW - dt.timedelta(days=d) for d in (0, 1.5, 3)], utc=True))
    windows = rolling_windows(stamps, window_days=2, step_days=1)
    ends = [end for _, end in windows]
    assert ends == [pd.Timestamp(NOW - dt.timedelta(days=d)) for d in (3, 2, 1, 0)], ends
    assert all(end - start == dt.timedelta(days=2) for start, end in windows), "window length"


def classification_evaluate(params):
    """The project's evaluate params with the classification metric these synthetic logs score,
    whatever task the adopted table has."""
    return params.evaluate.model_copy(update={"headline": ["balanced_accuracy_score"]})


def test_windows_hold_the_right_rows_and_scores(params):
    # Given 40 correct predictions 8-9 days ago and 40 half-wrong ones in the last day, when
    # scored in 7-day windows, then the newest window holds exactly the recent 40 at 0.5
    # accuracy, the oldest the old 40 at 1.0, and decay is found.
    old = [(8 + i / 40, True) for i in range(40)]
    new = [(i / 40, i % 4 < 2) for i in range(40)]
    decay = DecayParams(window_days=7, step_days=1, min_labels=30, metric="balanced_accuracy_score")
    summary = measure_decay(
        _labelled(old + new),
        training=TRAINING,
        decay=decay,
        evaluate=classification_evaluate(params),
        task="classification",
    )
    windows = summary["windows"]
    first, last = windows[0], windows[-1]
    assert (first["labels"], first["balanced_accuracy_score"]) == (40, 1.0), f"oldest {first}"
    assert (last["labels"], last["balanced_accuracy_score"]) == (40, 0.5), f"newest {last}"
    middle = [w for w in windows if w["labels"] < 30]
    assert all(w["balanced_accuracy_score"] is None for w in middle), "thin windows were scored"
    assert summary["latest"] == 0.5, f"latest window: {summary['latest']}"
    assert summary["decay_found"], f"decay missed: {summary}"


def test_no_decay_inside_the_interval(params):
    # Given all-correct recent predictions, then no decay is found.
    summary = measure_decay(
        _labelled([(i / 40, True) for i in range(40)]),
        training=TRAINING,
        decay=DecayParams(min_labels=30),
        evaluate=classification_evaluate(params),
        task="classification",
    )
    assert summary["latest"] == 1.0, f"latest window: {summary['latest']}"
    assert not summary["decay_found"], f"decay found inside the interval: {summary}"


def test_metric_without_interval_is_refused(params):
    # Given a decay metric that is not a headline metric, then it is refused with a message.
    with pytest.raises(ValueError, match=r"evaluate\.headline"):
        measure_decay(
            _labelled([(0, True)]),
            training=TRAINING,
            decay=DecayParams(metric="accuracy_score"),
            evaluate=params.evaluate,
            task="classification",
        )


def test_latest_feedback_wins_and_unlabelled_predictions_are_left_out(tmp_path):
    # Given two feedbacks for one prediction and a prediction without feedback, when the
    # store joins them, then one row is kept, with the later label.
    labelled, unlabelled = log_record({}, "A"), log_record({}, "B")
    write_log(tmp_path, [labelled, unlabelled])
    for hours, label in ((1, "second"), (0, "first")):  # appended out of time order
        append_feedback(
            tmp_path,
            {
                "prediction_id": labelled["prediction_id"],
                "label": label,
                "timestamp": (NOW + dt.timedelta(hours=hours)).isoformat(),
            },
        )
    with open_store(tmp_path) as store:
        window = store.newest_labelled(rows=10)
    assert window.frame["label"].tolist() == ["second"], f"joined {window.frame.to_dict()}"
    assert window.summary() == {"used": 1, "available": 1}, window.summary()


def _decay_command(tmp_path) -> int:
    """`mlgitops monitor decay` on tmp_path/logs with TRAINING as the metrics, into out/."""
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(TRAINING))
    options = {
        "--logs": tmp_path / "logs",
        "--metrics": metrics,
        "--output-dir": tmp_path / "out",
        "--params": EXAMPLE_PARAMS_PATH,
    }
    return main(["monitor", "decay", *(str(x) for pair in options.items() for x in pair)])


def test_decay_command_reads_logs_and_feedback(tmp_path, capsys):
    # Given a log of 40 predictions with feedback, when `mlgitops monitor decay` runs, then it
    # writes decay.json and decay.md with one scored window.
    labels = ["Adelie Penguin (Pygoscelis adeliae)", "Gentoo penguin (Pygoscelis papua)"]
    records = [log_record({}, labels[i % 2], when=NOW - dt.timedelta(hours=i)) for i in range(40)]
    write_log(tmp_path / "logs", records)
    for record in records:
        append_feedback(
            tmp_path / "logs",
            {
                "prediction_id": record["prediction_id"],
                "label": record["prediction"],
                "timestamp": NOW.isoformat(),
            },
        )
    out = tmp_path / "out"
    code = _decay_command(tmp_path)
    assert code == 0, f"exit {code}: {capsys.readouterr()}"
    summary = json.loads((out / "decay.json").read_text())
    assert summary["latest"] == 1.0, f"latest window {summary['latest']}"
    assert "| 40 |" in (out / "decay.md").read_text(), "window row missing from markdown"


def _labelled_log(folder, count: int) -> None:
    records = [log_record({}, "A", when=NOW - dt.timedelta(hours=i)) for i in range(count)]
    write_log(folder, records)
    for record in records:
        append_feedback(
            folder,
            {"prediction_id": record["prediction_id"], "label": "A", "timestamp": NOW.isoformat()},
        )


def test_decay_with_too_few_labels_cannot_judge(tmp_path, capsys):
    # Given fewer labelled predictions than min_labels, when `monitor decay` runs, then it
    # exits 2 (cannot judge) and says why, instead of "no decay".
    _labelled_log(tmp_path / "logs", 5)
    code = _decay_command(tmp_path)
    out = capsys.readouterr().out
    assert code == 2, f"exit {code}: {out}"
    assert "cannot judge decay" in out, out
    assert "no decay" not in out, out
    assert "Not enough labelled predictions" in (tmp_path / "out" / "decay.md").read_text()


@pytest.mark.parametrize(
    ("codes", "expected"),
    [((0, 0), 0), ((1, 0), 1), ((0, 1), 1), ((1, 2), 1), ((2, 0), 2), ((0, 2), 2), ((1, 1), 1)],
)
def test_check_combines_drift_and_decay(codes, expected):
    from mlgitops.monitor.commands import combined_exit

    assert combined_exit(*codes) == expected, f"{codes} -> {combined_exit(*codes)}"


def test_check_runs_decay_when_drift_is_found(tmp_path, traffic, artifacts, seed):
    # Given shifted traffic (drift) with too few labels, when `monitor check` runs, then both
    # reports are written (decay ran after drift was found) and it exits 1.
    from prediction_logs import MODEL_MD5

    write_log(tmp_path / "logs", traffic(seed=seed, shift=1.5))
    out = tmp_path / "out"
    code = main(
        [
            "monitor",
            "check",
            "--logs",
            str(tmp_path / "logs"),
            "--reference",
            str(artifacts / "train.csv"),
            "--model-md5",
            MODEL_MD5,
            "--metrics",
            str(artifacts.parent / "reports" / "metrics.json"),
            "--output-dir",
            str(out),
        ]
    )
    assert code == 1, f"exit {code}"
    assert (out / "drift.json").exists(), "drift did not run"
    assert (out / "decay.json").exists(), "decay did not run after drift was found"
