"""The markdown stays under GitHub's comment limit, dropping the least important parts first."""

from __future__ import annotations

from mlgitops.markdown import GITHUB_COMMENT_LIMIT, Section, assemble, fmt, table


def test_short_report_is_untouched():
    text = assemble([Section("", "title", 1), Section("A", "body a", 2)])
    assert "body a" in text
    assert "shortened" not in text


def test_least_important_sections_go_first_and_the_report_says_so():
    sections = [
        Section("", "## title", 1),
        Section("Gate", "verdict", 1),
        Section("Params", "p" * 30_000, 2),
        Section("Charts", "c" * 30_000, 6),
        Section("Validation", "v" * 30_000, 8),
    ]
    text = assemble(sections)
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert "v" * 1000 not in text, "the least important section (validation) is left out first"
    assert "c" * 1000 in text or "p" * 1000 in text
    assert "p" * 30_000 in text, "params (more important) survive"
    assert "Left out: Validation" in text
    assert text.index("## title") < text.index("shortened"), "the notice sits under the title"


def test_essential_sections_alone_are_cut_with_a_notice():
    text = assemble([Section("", "x" * 80_000, 1)])
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert text.rstrip().endswith("see the workflow artifact._")


def test_table_cells_escape_pipes_and_format_numbers():
    rendered = table(["a", "b"], [["x|y", 0.123456], [None, 3]], "lr")
    assert "x\\|y" in rendered
    assert "0.1235" in rendered
    assert "—" in rendered
    assert fmt(True) == "true"
