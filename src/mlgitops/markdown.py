"""The report as GitHub-flavoured markdown, kept under GitHub's comment size limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# GitHub refuses comments longer than 65,536 characters; CML adds a watermark line too.
GITHUB_COMMENT_LIMIT = 65_536
SAFETY_MARGIN = 1_536


@dataclass(frozen=True)
class Section:
    """A titled part of the report; a higher `priority` number is dropped first when too long."""

    title: str
    body: str
    priority: int

    def render(self) -> str:
        """The section as markdown: its heading (if titled), then its body."""
        return (
            f"### {self.title}\n\n{self.body.strip()}\n" if self.title else self.body.strip() + "\n"
        )


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: numbers rounded, None as an em dash, text with pipes escaped."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return str(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def signed(value: float | None) -> str:
    """A change with its sign, to four places; a dash when there is none."""
    return "—" if value is None else f"{value:+.4f}"


def table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    """A markdown table; `align` is one character per column: l or r."""
    align = align or "l" * len(header)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def assemble(sections: list[Section], *, limit: int = GITHUB_COMMENT_LIMIT - SAFETY_MARGIN) -> str:
    """Join sections in order; when too long, empty the least important ones first and say so."""
    kept = list(sections)
    truncated: list[str] = []
    for victim in sorted(sections, key=lambda s: -s.priority):
        if len(_join(kept, truncated)) <= limit or victim.priority <= 1:
            break
        index = kept.index(victim)
        kept[index] = Section(
            victim.title,
            "_Left out to fit GitHub's comment size limit; the "
            "full report is in the workflow artifact._",
            victim.priority,
        )
        truncated.append(victim.title)
    text = _join(kept, truncated)
    if len(text) > limit:  # the essential sections alone are too long: cut the text itself
        notice = "\n\n_…cut at GitHub's comment size limit; see the workflow artifact._\n"
        text = text[: limit - len(notice)] + notice
    return text


def _join(sections: list[Section], truncated: list[str]) -> str:
    parts = [s.render() for s in sections]
    if truncated:
        note = (
            "> [!NOTE]\n> This report was shortened to fit GitHub's 65,536-character comment "
            f"limit. Left out: {', '.join(truncated)}. The full report is in the "
            "`pr-report` workflow artifact.\n"
        )
        parts.insert(1, note)
    return "\n".join(parts)
