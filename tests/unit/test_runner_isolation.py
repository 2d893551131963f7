"""The suite never writes into the Actions runner's step files (job summary, step outputs)."""

from __future__ import annotations

import os

from helpers import PROJECT_ROOT, RUNNER_FILES, run_pytest


def test_tests_that_write_summaries_leave_the_runners_files_alone(tmp_path):
    # Given a runner's step files in the environment, as in the Test step of pr.yml, when the
    # report, gate and comment-target tests run (they write job summaries and step outputs),
    # then the runner's files stay empty.
    files = {name: tmp_path / name.lower() for name in RUNNER_FILES}
    for path in files.values():
        path.write_text("")
    env = {**os.environ, **{name: str(path) for name, path in files.items()}}
    result = run_pytest(
        "tests/unit/report/test_build.py",
        "-k",
        "gate_exit_code or metrics_params_and_data_diffs or positive_integers",
        cwd=PROJECT_ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    written = {name: path.read_text() for name, path in files.items() if path.read_text()}
    assert not written, f"the tests wrote into the runner's files: {sorted(written)}"
