"""`mlgitops deployed-commit` and `mlgitops score`'s refusals, as score.yml runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitops.cli import main


def _entry(commit: str, outcome: str) -> str:
    return json.dumps({"commit": commit, "outcome": outcome, "model_md5": "0" * 32}) + "\n"


def test_the_deployed_commit_is_the_last_one_serving(tmp_path: Path, monkeypatch, capsys):
    # Given a record in which the newest release failed after an older one shipped
    record = tmp_path / "deployments.jsonl"
    record.write_text(_entry("a" * 40, "released") + _entry("b" * 40, "failed"))
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    # When the workflow asks which commit to score with
    code = main(["deployed-commit", "--deployments", str(record)])
    # Then it is the release that serves, as a step output too
    assert code == 0
    assert capsys.readouterr().out.strip() == "a" * 40
    assert outputs.read_text() == f"commit={'a' * 40}\n"


def test_nothing_deployed_fails_naming_why(tmp_path: Path, caplog):
    record = tmp_path / "deployments.jsonl"
    record.write_text(_entry("b" * 40, "failed"))
    assert main(["deployed-commit", "--deployments", str(record)]) == 1
    assert "no release that is serving" in caplog.text


@pytest.mark.parametrize("option", ["--input", "--output"])
def test_an_empty_url_is_refused_naming_the_setting(option, tmp_path: Path, caplog):
    # Given the URL a workflow passes when neither its input nor the variable is set
    urls = {"--input": str(tmp_path / "rows.csv"), "--output": str(tmp_path / "out")}
    urls[option] = ""
    code = main(["score", "--input", urls["--input"], "--output", urls["--output"]])
    assert code == 2, "an empty URL is a usage error"
    assert option in caplog.text
    assert "MLGITOPS_SCORE_" in caplog.text
