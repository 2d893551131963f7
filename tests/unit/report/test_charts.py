"""Charts read class labels back as the text they were written as, whatever they look like."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgitops import layout
from mlgitops.report import charts

# Labels a contract may declare: ints, bools, numeric strings, words, text pandas reads as NA.
LABELS = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(["True", "False", "1.5", "0.0", "NA", "None", "007"]),
    st.text("abcXYZ (/)é ", min_size=1, max_size=12).map(str.strip).filter(bool),
)


def _pairs(labels: list[str], seed: int) -> pd.DataFrame:
    rng = pd.Series(range(40)).sample(frac=1, random_state=seed).to_numpy()
    return pd.DataFrame(
        {
            "actual": [labels[i % len(labels)] for i in range(40)],
            "predicted": [labels[i % len(labels)] for i in rng],
        }
    )


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(LABELS, min_size=2, max_size=4, unique=True), seed=st.integers(0, 99))
def test_confusion_table_keeps_labels_as_written(labels: list[str], seed: int) -> None:
    # Given a confusion.csv as evaluate writes it, with labels that look like numbers or NA
    pairs = _pairs(labels, seed)
    text = pairs.to_csv(index=False)
    # When the report reads it back and renders the matrix
    table = charts.read_csv_text(text, labels=True)
    rendered = charts.confusion_table(table)
    # Then every label is still the text it was, and the counts add up to the rows
    assert sorted(set(table["actual"])) == sorted(set(labels)), "labels changed on read"
    header = rendered.splitlines()[0]
    for label in labels:
        assert charts._label(label) in header, f"label {label!r} missing from {header!r}"
    assert table.shape[0] == len(pairs), "rows lost on read"


def test_pngs_render_integer_and_bool_labels(tmp_path: Path, seed: int) -> None:
    # Given plot tables whose class labels are integers and booleans
    for name, labels in (("ints", ["0", "1", "2"]), ("bools", ["False", "True"])):
        folder = tmp_path / layout.PLOTS_DIR / name
        folder.mkdir(parents=True)
        _pairs(labels, seed).to_csv(folder / "confusion.csv", index=False)
    # When the PNGs are rendered
    written = charts.render_pngs(tmp_path, tmp_path / "out")
    # Then each confusion table becomes a picture
    assert sorted(written) == ["bools/confusion.png", "ints/confusion.png"], written
