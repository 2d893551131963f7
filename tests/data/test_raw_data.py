"""The real raw table: it satisfies the contract, and `make data` reproduces data.dvc exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from helpers import run
from mlgitops.contract import check_table


def test_raw_table_satisfies_the_contract(raw_text, params):
    typed, report = check_table(raw_text, params.contract)
    assert report["valid"], f"the shipped data violates the contract: {report['failures']}"
    assert report["rows"] == 344
    assert typed["Species"].nunique() == 3
    assert report["columns"]["Comments"]["role"] == "personal"


def _file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_offline_fetch_reproduces_the_pinned_hash(project_copy):
    # Given a fresh copy whose DVC remote is empty, when `mlgitops data fetch` runs,
    # then the file comes from the package and hashes to what data.dvc records.
    project = project_copy()
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
    project = project_copy()
    run(["mlgitops", "data", "fetch"], project)
    run(["dvc", "push", "data.dvc"], project)
    (project / "data" / "raw.csv").unlink()
    run(["rm", "-rf", ".dvc/cache"], project)
    result = run(["mlgitops", "data", "fetch"], project)
    assert "from remote" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_fetch_refuses_data_that_does_not_match_the_pointer(project_copy):
    project = project_copy()
    pointer = project / "data.dvc"
    pointer.write_text(pointer.read_text().replace("md5: ", "md5: 0", 1).replace(".dir", "x.dir"))
    result = run(["mlgitops", "data", "fetch"], project, check=False)
    assert result.returncode != 0
    assert "does not match the hash in data.dvc" in result.stderr
