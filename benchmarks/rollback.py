"""Rollback benchmark: seconds from a revert commit to the old model serving, and requests
that fail while a deploy switches versions under light load.

Run with `make bench-rollback`. Everything happens in a temporary folder on 127.0.0.1: a bare
git origin, a local DVC remote, the local deploy target. The first deploy (which builds the
first bento) is the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from mlgitops.deploy.local import LocalTarget, free_port
from mlgitops.deploy.release import example_request
from mlgitops.params import load_params

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-rollback-key"
TARGET_SECONDS = 60.0


def sh(*command: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


def git(repo: Path, *args: str) -> str:
    return sh("git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args, cwd=repo)


class Load:
    """Light traffic: one /predict every `interval` seconds, counting failures."""

    def __init__(self, endpoint: str, example: dict, interval: float = 0.05):
        self.endpoint, self.example, self.interval = endpoint, example, interval
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=self.endpoint, headers=headers, timeout=10) as client:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    ok = client.post("/predict", json={"records": [self.example]}).status_code
                    self.failed += ok != 200
                except httpx.HTTPError:
                    self.failed += 1
                time.sleep(self.interval)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    os.environ.update(BENTOML_DO_NOT_TRACK="True", DVC_NO_ANALYTICS="1", MLGITOPS_API_KEYS=API_KEY)
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as folder:
        tmp = Path(folder)
        os.environ["BENTOML_HOME"] = str(tmp / "bentoml")
        seed = tmp / "seed"
        for name in sh(
            "git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT
        ).splitlines():
            if (ROOT / name).is_file():
                (seed / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, seed / name)
        git(seed, "init", "-q", "-b", "main")
        sh("dvc", "remote", "modify", "local", "url", str(tmp / "dvc-remote"), cwd=seed)
        git(seed, "add", "-A")
        git(seed, "commit", "-qm", "seed")
        origin = tmp / "origin.git"
        git(tmp, "clone", "-q", "--bare", str(seed), str(origin))
        dev = tmp / "dev"
        git(tmp, "clone", "-q", str(origin), str(dev))
        sh("mlgitops", "data", "fetch", cwd=dev)
        sh("dvc", "repro", cwd=dev)
        sh("dvc", "push", cwd=dev)
        target = LocalTarget(state_dir=tmp / "state", port=free_port())
        record = tmp / "deployments.jsonl"

        def deploy(name: str) -> float:
            clone = tmp / f"deploy-{name}"
            git(tmp, "clone", "-q", str(origin), str(clone))
            start = time.perf_counter()
            sh(
                "mlgitops",
                "deploy",
                "--target",
                "local",
                "--port",
                str(target.port),
                "--state-dir",
                str(target.state_dir),
                "--record",
                str(record),
                cwd=clone,
            )
            return time.perf_counter() - start

        def serving() -> str:
            response = httpx.get(
                f"{target.endpoint}/metadata",
                timeout=10,
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            return response.json()["model_md5"]

        rows = []
        try:
            rows.append(("deploy v1 (baseline: first bento build)", deploy("v1"), 0, 0))
            v1 = serving()
            request = example_request(dev, load_params(dev / "params.yaml"))
            git(dev, "checkout", "-qb", "change")
            params_file = dev / "params.yaml"
            params_file.write_text(
                params_file.read_text().replace("n_estimators: 200", "n_estimators: 60")
            )
            sh("dvc", "repro", cwd=dev)
            git(dev, "commit", "-qam", "Smaller forest")
            sh("dvc", "push", cwd=dev)
            git(dev, "checkout", "-q", "main")
            git(dev, "merge", "-q", "--no-ff", "change", "-m", "Merge change")
            git(dev, "push", "-q", "origin", "main")
            with Load(target.endpoint, request) as load:
                seconds = deploy("v2")
            rows.append(("deploy v2 under light load", seconds, load.sent, load.failed))
            start = time.perf_counter()
            git(dev, "revert", "--no-edit", "-m", "1", "HEAD")
            git(dev, "push", "-q", "origin", "main")
            with Load(target.endpoint, request) as load:
                deploy("revert")
                while serving() != v1:
                    time.sleep(0.2)
            rows.append(
                ("revert commit -> v1 serving", time.perf_counter() - start, load.sent, load.failed)
            )
        finally:
            target.stop()
    print("| step | seconds | requests | failed |\n|---|---:|---:|---:|")
    for name, seconds, sent, failed in rows:
        print(f"| {name} | {seconds:.1f} | {sent} | {failed} |")
    revert_seconds = rows[-1][1]
    verdict = "met" if revert_seconds < TARGET_SECONDS else "MISSED"
    print(
        f"\nrollback target (< {TARGET_SECONDS:.0f} s from revert commit to old model): {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
