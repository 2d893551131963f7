"""The README is a landing page held to the tree: its size, links, docs index and layout."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

from helpers import PROJECT_ROOT, tracked_files

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
WORKFLOWS_PAGE = DOCS / "workflows.md"
README_LIMIT = 8_000
# A workflow's leading comment says what it is in a few lines; the rest lives in the page.
HEADER_LINES = 5
PAGES = sorted(DOCS.glob("*.md"))
PARSER = MarkdownIt("commonmark")


def tokens(path: Path) -> list:
    """The page's block tokens, as GitHub's CommonMark parser sees them."""
    return PARSER.parse(path.read_text(encoding="utf-8"))


def links(path: Path) -> list[str]:
    """Every link and image target of a page, code blocks and code spans excluded."""
    found = []
    for block in tokens(path):
        for child in block.children or ():
            if child.type == "link_open":
                found.append(str(child.attrs["href"]))
            elif child.type == "image":
                found.append(str(child.attrs["src"]))
    return found


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of a page, repeated headings numbered as GitHub does."""
    seen: dict[str, int] = {}
    found = set()
    blocks = tokens(path)
    for opening, inline in pairwise(blocks):
        if opening.type != "heading_open":
            continue
        anchor = github_anchor(inline.content)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def relative_links(path: Path) -> list[tuple[str, Path, str]]:
    """(link as written, the file it names, its #fragment) for every link into the tree."""
    found = []
    for target in links(path):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            continue
        file = (path.parent / unquote(parts.path)).resolve() if parts.path else path.resolve()
        found.append((target, file, parts.fragment))
    return found


def layout_names(readme: str) -> set[str]:
    """The names the README's layout block lists: the first column, `a / b` meaning both."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    names = set()
    for line in block.splitlines()[1:]:
        if line and not line[0].isspace():
            names.update(re.split(r"\s{2,}", line.strip(), maxsplit=1)[0].split(" / "))
    return names


def top_level(files: list[str]) -> set[str]:
    """The repository's top-level entries, folders with a trailing slash."""
    return {name.split("/", 1)[0] + ("/" if "/" in name else "") for name in files}


def test_readme_is_a_landing_page_under_the_limit():
    # Given the README, then it stays a landing page: under the limit, the rest in docs/.
    size = len(README.read_text(encoding="utf-8"))
    assert size < README_LIMIT, f"README.md has {size} characters, expected < {README_LIMIT}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: page.name)
def test_every_relative_link_resolves_in_the_tree(page):
    # Given a page's links into the tree, then each names a file git would track (not one the
    # tree ignores) and, with a #fragment, a heading of that file.
    tree = {(PROJECT_ROOT / name).resolve() for name in tracked_files(PROJECT_ROOT)}
    folders = {parent for file in tree for parent in file.parents}
    broken = [
        target
        for target, file, _ in relative_links(page)
        if file not in tree and not (file in folders and file.is_dir())
    ]
    assert not broken, f"{page.name} links to what is not in the tree: {broken}"
    wrong = [
        target
        for target, file, fragment in relative_links(page)
        if fragment and file.suffix == ".md" and fragment not in anchors(file)
    ]
    assert not wrong, f"{page.name} links to headings that do not exist: {wrong}"


def test_every_docs_page_is_linked_from_the_readme():
    # Given docs/*.md, then the README's index reaches every page.
    linked = {file for _, file, _ in relative_links(README)}
    unlinked = [page.name for page in PAGES if page.resolve() not in linked]
    assert PAGES, "docs/ holds no page"
    assert not unlinked, f"README.md links to no docs/ page named {unlinked}"


def test_readme_layout_names_exactly_the_top_level_of_the_repository():
    # Given the layout block and what git tracks, then the block names every top-level file
    # and folder, and nothing that is not there.
    listed = layout_names(README.read_text(encoding="utf-8"))
    present = top_level(tracked_files(PROJECT_ROOT))
    assert listed == present, (
        f"README layout lists {sorted(listed - present)} that the repository lacks and "
        f"misses {sorted(present - listed)}"
    )


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS.glob("*.yml")), ids=lambda path: path.name)
def test_workflow_header_is_short_and_links_its_section(workflow):
    # Given a workflow's leading comment block, then it has at most HEADER_LINES lines, the last
    # naming its section of docs/workflows.md, which exists and is titled after the file.
    lines = workflow.read_text(encoding="utf-8").splitlines()
    header = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    assert 0 < len(header) <= HEADER_LINES, f"{workflow.name}: {len(header)} header lines"
    expected = f"docs/workflows.md#{github_anchor(workflow.name)}"
    assert header[-1].endswith(expected), f"{workflow.name}: last line {header[-1]!r}"
    assert github_anchor(workflow.name) in anchors(WORKFLOWS_PAGE), f"no section {expected}"
