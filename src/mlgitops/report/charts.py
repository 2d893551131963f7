"""Charts GitHub renders itself (mermaid, markdown tables) and PNGs for the workflow artifact."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlgitops.layout import PLOTS_DIR

logger = logging.getLogger(__name__)


def _label(text: object, limit: int = 24) -> str:
    text = str(text).replace('"', "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _numbers(values: Sequence[float | None]) -> str:
    return "[" + ", ".join("0" if v is None else f"{v:.4g}" for v in values) + "]"


def xychart(
    title: str,
    labels: list[str],
    bars: list[float | None],
    line: list[float | None] | None,
    *,
    y_label: str,
    y_range: tuple[float, float] | None = None,
) -> str:
    """A mermaid `xychart-beta`: bars for the new values, a line for the base values."""
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{_label(title, 60)}"',
        "    x-axis [" + ", ".join(f'"{_label(x)}"' for x in labels) + "]",
    ]
    if y_range is None:
        values = [v for v in [*bars, *(line or [])] if v is not None]
        y_range = (0.0, max(values) * 1.1 if values and max(values) > 0 else 1.0)
    lines.append(f'    y-axis "{y_label}" {y_range[0]:.4g} --> {y_range[1]:.4g}')
    lines.append(f"    bar {_numbers(bars)}")
    if line is not None:
        lines.append(f"    line {_numbers(line)}")
    lines.append("```")
    return "\n".join(lines)


def curve_chart(
    title: str, base: pd.DataFrame | None, new: pd.DataFrame, x: str, y: str, *, points: int = 11
) -> str:
    """A curve resampled on an even grid of x in [0, 1], as mermaid lines (new, then base)."""
    grid = np.linspace(0, 1, points)

    def resample(table: pd.DataFrame) -> list[float]:
        ordered = table.sort_values(x)
        return np.interp(grid, ordered[x].to_numpy(), ordered[y].to_numpy()).tolist()

    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{_label(title, 60)}"',
        "    x-axis [" + ", ".join(f'"{g:.1f}"' for g in grid) + "]",
        f'    y-axis "{y}" 0 --> 1',
        f"    line {_numbers(resample(new))}",
    ]
    if base is not None:
        lines.append(f"    line {_numbers(resample(base))}")
    lines.append("```")
    return "\n".join(lines)


def confusion_table(pairs: pd.DataFrame) -> str:
    """A markdown confusion matrix (rows: actual, columns: predicted) from per-row pairs."""
    matrix = pd.crosstab(pairs["actual"], pairs["predicted"])
    labels = sorted(set(matrix.index) | set(matrix.columns))
    matrix = matrix.reindex(index=labels, columns=labels, fill_value=0)
    header = "| actual \\ predicted | " + " | ".join(_label(c) for c in labels) + " |"
    rule = "|---|" + "---:|" * len(labels)
    rows = [
        f"| {_label(a)} | "
        + " | ".join(f"**{matrix.loc[a, p]}**" if a == p else str(matrix.loc[a, p]) for p in labels)
        + " |"
        for a in labels
    ]
    return "\n".join([header, rule, *rows])


# Columns holding class labels: read as text, since a label such as `0`, `True` or `1.5` must
# stay the label the model predicts, not become a number pandas guessed.
LABEL_COLUMNS = ("actual", "predicted")


def read_csv_text(text: str | None, *, labels: bool = False) -> pd.DataFrame | None:
    """A CSV plot table from its text; with `labels`, the label columns are read as text."""
    if text is None:
        return None
    return pd.read_csv(
        io.StringIO(text),
        dtype=dict.fromkeys(LABEL_COLUMNS, str) if labels else None,
        keep_default_na=not labels,
    )


def _is_confusion(columns: list[str]) -> bool:
    return set(LABEL_COLUMNS) <= set(columns) and "residual" not in columns


def render_pngs(workspace: Path, output: Path) -> list[str]:
    """PNG versions of every plot table under reports/plots, for the workflow artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    root = workspace / PLOTS_DIR
    for table_path in sorted(root.rglob("*.csv")) if root.is_dir() else []:
        text = table_path.read_text(encoding="utf-8")
        table = read_csv_text(text)
        if table is not None and _is_confusion(list(table.columns)):
            table = read_csv_text(text, labels=True)
        if table is None:  # only a missing file reads as None, and this one exists
            continue
        relative = table_path.relative_to(root).with_suffix(".png")
        figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
        try:
            _draw(axes, table, relative.as_posix())
            target = output / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            figure.tight_layout()
            figure.savefig(target, metadata={"Software": None})
            written.append(target.relative_to(output).as_posix())
        finally:
            plt.close(figure)
    return written


def _draw(axes: Any, table: pd.DataFrame, name: str) -> None:
    axes.set_title(name.removesuffix(".png"))
    columns = list(table.columns)
    if _is_confusion(columns):
        matrix = pd.crosstab(table["actual"], table["predicted"])
        axes.imshow(matrix.to_numpy(), cmap="Blues")
        axes.set_xticks(range(len(matrix.columns)), [_label(c, 12) for c in matrix.columns])
        axes.set_yticks(range(len(matrix.index)), [_label(c, 12) for c in matrix.index])
        for (i, j), count in np.ndenumerate(matrix.to_numpy()):
            axes.text(j, i, str(count), ha="center", va="center")
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
    elif "feature" in columns:
        ordered = table.sort_values(columns[1])
        axes.barh(ordered["feature"].astype(str), ordered[columns[1]])
        axes.set_xlabel(columns[1])
    elif "residual" in columns:
        axes.scatter(table["predicted"], table["residual"], s=8)
        axes.axhline(0, color="grey", linewidth=1)
        axes.set_xlabel("predicted")
        axes.set_ylabel("residual")
    else:
        axes.plot(table[columns[0]], table[columns[1]], marker=".")
        axes.set_xlabel(columns[0])
        axes.set_ylabel(columns[1])
