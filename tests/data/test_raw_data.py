"""The example raw table satisfies the example's contract and `make data` reproduces its
pointer exactly; an adopted project's data comes from its remote, never from the package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from helpers import run
from mlgitops.contract.check import check_table
from mlgitops.data import EXAMPLE_DATA_MD5

# The example's data.dvc, as `dvc add data` writes it for the package's table.
EXAMPLE_POINTER = f"""outs:
- md5: {EXAMPLE_DATA_MD5}
  size: 53904
  nfiles: 1
  hash: md5
  path: data
"""


def test_example_table_satisfies_the_example_contract(example_text, example_params):
    typed, report = check_table(example_text, example_params.contract)
    assert report["valid"], f"the example data violates its contract: {report['failures']}"
    assert report["rows"] == 344
    assert typed["Species"].nunique() == 3
    assert report["columns"]["Comments"]["role"] == "personal"


def test_generated_table_satisfies_the_project_contract(raw_text, params):
    # Given a table made from the project's contract, then the contract accepts it.
    _, report = check_table(raw_text, params.contract)
    assert report["valid"], f"the generator breaks the contract: {report['failures']}"


def _example_copy(project_copy) -> Path:
    """A project copy whose data.dvc is the example's, whatever the project has adopted."""
    project = project_copy()
    (project / "data.dvc").write_text(EXAMPLE_POINTER)
    return project


def _file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_offline_fetch_reproduces_the_pinned_hash(project_copy):
    # Given a fresh copy whose DVC remote is empty, when `mlgitops data fetch` runs,
    # then the file comes from the package and hashes to what data.dvc records.
    project = _example_copy(project_copy)
    result = run(["mlgitops", "data", "fetch"], project)
    assert "from package" in result.stdout, result.stdout + result.stderr
    pointer = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]
    dir_hash = pointer["md5"].removesuffix(".dir")
    manifest = project / ".dvc" / "cache" / "files" / "md5" / dir_hash[:2] / (dir_hash[2:] + ".dir")
    entries = {e["relpath"]: e["md5"] for e in json.loads(manifest.read_text())}
    assert entries == {"raw.csv": _file_md5(project / "data" / "raw.csv")}, (
        "the materialized file must be byte-identical to the version data.dvc pins"
    )
    assert run(["dvc", "status", "data.dvc"], project).stdout.strip().endswith("up to date.")


@pytest.mark.slow
def test_fetch_prefers_the_remote(project_copy):
    project = _example_copy(project_copy)
    run(["mlgitops", "data", "fetch"], project)
    run(["dvc", "push", "data.dvc"], project)
    (project / "data" / "raw.csv").unlink()
    run(["rm", "-rf", ".dvc/cache"], project)
    result = run(["mlgitops", "data", "fetch"], project)
    assert "from remote" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_adopted_data_missing_from_the_remote_is_never_the_example(project_copy):
    # Given a project whose data.dvc is not the example's, whose own data file holds other
    # rows and whose remote is empty, when `mlgitops data fetch` runs, then it fails saying
    # no remote holds the data and how to push it, and leaves the file as it was.
    project = project_copy()
    pointer = project / "data.dvc"
    pointer.write_text(EXAMPLE_POINTER.replace(EXAMPLE_DATA_MD5, "0" * 32 + ".dir"))
    raw = project / "data" / "raw.csv"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text("a,b\n1,2\n")
    result = run(["mlgitops", "data", "fetch"], project, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no reachable DVC remote holds it" in result.stderr, result.stderr
    assert "dvc push" in result.stderr, "the message must say how to push the data"
    assert "Traceback" not in result.stderr
    assert raw.read_text() == "a,b\n1,2\n", "the example table was written over the data"
