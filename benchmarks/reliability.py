"""Reliability under load and faults: a soak, a `kill -9` mid-load, a deploy that fails half-way.

Run with `make bench-reliability`. Everything runs on 127.0.0.1 from a private BentoML home
(the workspace's model, packaged and built into a bento), each phase bounded in time:

1. soak: single-record /predict at concurrency 64 for 60 s after a 10 s warm-up; errors, and
   the server's resident memory (process tree) after the soak against after the warm-up;
2. kill -9: load at concurrency 16; the server and its workers get SIGKILL mid-load,
   then a new server starts on the same prediction log; every 2xx answer's `request_id` is
   looked up in the log: acknowledged predictions with no record are lost;
3. kill -9 of the server's process group only: BentoML's workers run in sessions of their
   own, so they outlive it (which is why `stop_process_group` now kills the whole tree);
4. failed deploy: release A through the local target (proxy + server), keep load on the proxy,
   release B whose server dies on start (its bento holds another model than B's dvc.lock
   pins), as `mlgitops deploy` does; A must keep answering throughout and be the active
   release afterwards;
5. worker restart: serve the bento, package another model (the project trained with another
   seed) into the same store, `kill -9` the workers: BentoML restarts them, and they must
   serve the bento's own model (the one its manifest pins), not the newest one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from mlgitops.deploy.local import free_port, stop_process_group, wait_ready
from mlgitops.deploy.target import DeployError
from mlgitops.params import load_params
from mlgitops.serving.server import serve_command

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-reliability-key"
SOAK_CONCURRENCY = 64
WARMUP_SECONDS = 10.0
SOAK_SECONDS = 60.0
KILL_CONCURRENCY = 16
READY_SECONDS = 120.0
# The servers run as `mlgitops serve` and the local target run them: params' keep-alive.
KEEP_ALIVE_S = load_params(ROOT / "params.yaml").serve.keep_alive_s


def environment(home: Path, predictions: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PROMETHEUS_MULTIPROC_DIR"}}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="True",
        DVC_NO_ANALYTICS="1",
        MLGITOPS_API_KEYS=API_KEY,
        MLGITOPS_PREDICTION_LOG_DIR=str(predictions),
    )
    env.pop("MLGITOPS_MODEL_TAG", None)
    env.pop("MLGITOPS_MODEL_KEY", None)
    return env


def checked(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def rss_mib(self) -> float:
        root = psutil.Process(self.process.pid)
        tree = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree) / 2**20

    def tree_pids(self) -> list[int]:
        """The server's descendants (its workers), which live in sessions of their own."""
        return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]

    def stop(self) -> None:
        stop_process_group(self.process.pid, grace=20)
        self.process.wait(timeout=10)


def serve(tag: str, env: dict[str, str], log: Path, port: int | None = None) -> Server:
    """`bentoml serve tag` in its own process group, once /readyz answers 200."""
    port = port or free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            serve_command(tag, host="127.0.0.1", port=port, keep_alive_s=KEEP_ALIVE_S),
            cwd=log.parent,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        wait_ready(f"{server.url}/readyz", pid=process.pid, timeout=READY_SECONDS)
    except DeployError as error:
        server.stop()
        raise RuntimeError(f"{error}:\n{log.read_text()[-2000:]}") from None
    return server


@dataclass
class Tally:
    """What one load run saw."""

    ok: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    acked_ids: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


def error_kind(error: BaseException) -> str:
    """An exception's name and the lowest error behind it: `ReadError (ConnectionResetError)`."""
    cause = error.__cause__ or error.__context__
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    return type(error).__name__ + (f" ({type(cause).__name__})" if cause is not None else "")


async def load(
    url: str, body: dict[str, Any], *, concurrency: int, seconds: float, stop: asyncio.Event
) -> Tally:
    """Keep `concurrency` /predict requests in flight for `seconds` (or until `stop`)."""
    tally = Tally()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop_at and not stop.is_set():
                try:
                    response = await client.post(f"{url}/predict", json=body, headers=headers)
                except httpx.HTTPError as error:
                    tally.errors += 1
                    tally.count(error_kind(error))
                    await asyncio.sleep(0.05)  # the server is down: do not spin
                    continue
                tally.count(str(response.status_code))
                if response.status_code == 200:
                    tally.ok += 1
                    tally.acked_ids += [item["request_id"] for item in response.json()]
                else:
                    tally.errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def run_load(url: str, body: dict[str, Any], concurrency: int, seconds: float) -> Tally:
    async def main() -> Tally:
        return await load(url, body, concurrency=concurrency, seconds=seconds, stop=asyncio.Event())

    return asyncio.run(main())


def logged_prediction_ids(predictions: Path) -> tuple[set[str], int]:
    """Every `prediction_id` in the prediction log, and how many lines did not parse."""
    ids: set[str] = set()
    torn = 0
    for path in (predictions / "mlgitops_predictions" / "data").glob("*"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                ids.add(json.loads(line)["prediction_id"])
            except (ValueError, KeyError, TypeError):
                torn += 1
    return ids, torn


def kinds(tally: Tally) -> str:
    """Non-200 outcomes by status code or exception name, e.g. `503: 2, ReadTimeout: 1`."""
    found = [f"{name}: {n}" for name, n in sorted(tally.statuses.items()) if name != "200"]
    return ", ".join(found) or "none"


def soak(tag: str, env: dict[str, str], work: Path, body: dict[str, Any]) -> list[tuple]:
    server = serve(tag, env, work / "soak.log")
    try:
        warm = run_load(server.url, body, SOAK_CONCURRENCY, WARMUP_SECONDS)
        time.sleep(1)
        warm_rss = server.rss_mib()
        tally = run_load(server.url, body, SOAK_CONCURRENCY, SOAK_SECONDS)
        time.sleep(1)
        soak_rss = server.rss_mib()
    finally:
        server.stop()
    growth = (soak_rss - warm_rss) / warm_rss * 100
    return [
        ("soak", "requests answered 200 (64 concurrent, 60 s)", f"{tally.ok:,}", "", None),
        ("soak", "requests per second", f"{tally.ok / SOAK_SECONDS:.1f}", "", None),
        ("soak", "errors (non-200 or transport)", str(tally.errors), "0", tally.errors == 0),
        ("soak", "errors by kind", kinds(tally), "", None),
        ("soak", "warm-up errors", str(warm.errors), "", None),
        ("soak", "RSS after warm-up, MiB", f"{warm_rss:.0f}", "", None),
        ("soak", "RSS after soak, MiB", f"{soak_rss:.0f}", "", None),
        ("soak", "RSS growth, %", f"{growth:+.1f}", "≤ +10", growth <= 10),
    ]


def kill_mid_load(tag: str, env: dict[str, str], work: Path, body: dict[str, Any]) -> list[tuple]:
    predictions = Path(env["MLGITOPS_PREDICTION_LOG_DIR"])
    shutil.rmtree(predictions, ignore_errors=True)
    port = free_port()
    first = serve(tag, env, work / "kill.log", port)
    restarted: Server | None = None
    down_seconds = 0.0

    async def scenario() -> Tally:
        nonlocal restarted, down_seconds
        stop = asyncio.Event()
        task = asyncio.create_task(
            load(first.url, body, concurrency=KILL_CONCURRENCY, seconds=120, stop=stop)
        )
        await asyncio.sleep(8)
        killed_at = time.monotonic()
        # BentoML starts each worker in a session of its own, so SIGKILL goes to the whole
        # tree, as when a container or machine dies: the server and its workers, at once.
        tree = [first.process.pid, *first.tree_pids()]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.process.wait()
        restarted = await asyncio.to_thread(serve, tag, env, work / "kill.log", port)
        down_seconds = time.monotonic() - killed_at
        await asyncio.sleep(8)
        stop.set()
        return await task

    try:
        tally = asyncio.run(scenario())
    finally:
        first.stop()
        if restarted is not None:
            restarted.stop()
    logged, torn = logged_prediction_ids(predictions)
    lost = [i for i in tally.acked_ids if i not in logged]
    return [
        (
            "kill -9",
            "2xx answers (acknowledged predictions)",
            f"{len(tally.acked_ids):,}",
            "",
            None,
        ),
        ("kill -9", "acknowledged but not in the prediction log", str(len(lost)), "0", not lost),
        ("kill -9", "torn (unparsable) log lines", str(torn), "", None),
        ("kill -9", "requests failed while down (never 2xx)", str(tally.errors), "", None),
        ("kill -9", "seconds from kill to serving again", f"{down_seconds:.1f}", "", None),
    ]


def orphan_after_arbiter_kill(
    tag: str, env: dict[str, str], work: Path, body: dict[str, Any]
) -> list[tuple]:
    """SIGKILL of the `bentoml serve` process group alone: do its workers die with it?"""
    server = serve(tag, env, work / "orphan.log")
    workers = server.tree_pids()
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    time.sleep(3)
    alive = [pid for pid in workers if psutil.pid_exists(pid)]
    try:
        answered = httpx.get(f"{server.url}/readyz", timeout=5).status_code
    except httpx.TransportError:
        answered = None
    for pid in alive:  # clean up what the fault left behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [
        (
            "kill -9 group",
            "workers alive 3 s after SIGKILL of the server's process group",
            f"{len(alive)} of {len(workers)}",
            "0 (known gap, see SECURITY.md)",
            None,
        ),
        ("kill -9 group", "orphan still answering /readyz", str(answered or "no"), "no", None),
    ]


def failed_deploy(tag: str, env: dict[str, str], work: Path, body: dict[str, Any]) -> list[tuple]:
    from mlgitops.deploy.local import LocalTarget
    from mlgitops.deploy.release import release
    from mlgitops.deploy.target import DeployError
    from mlgitops.deploy.verify import Pinned

    state = work / "deploy"
    port = free_port()
    good = LocalTarget(state_dir=state, port=port, ready_timeout=READY_SECONDS, env=env)
    # B's server exits on start: B's dvc.lock pins another model than its bento holds.
    bad = LocalTarget(state_dir=state, port=port, ready_timeout=READY_SECONDS, env=env)
    a, b = Pinned("a" * 40, "", ""), Pinned("b" * 40, "0" * 32, "")
    os.environ.update(MLGITOPS_API_KEYS=API_KEY)  # the smoke test's key
    outcome = "B was released (wrong)"
    seconds = 0.0
    try:
        good.check_configured()
        started = good.release(a.commit, tag, None)

        async def scenario() -> Tally:
            nonlocal outcome, seconds
            stop = asyncio.Event()
            task = asyncio.create_task(
                load(started.endpoint, body, concurrency=8, seconds=180, stop=stop)
            )
            await asyncio.sleep(3)
            began = time.monotonic()
            try:
                await asyncio.to_thread(
                    release,
                    ROOT,
                    bad,
                    b,
                    params=load_params(ROOT / "params.yaml"),
                    image=None,
                    record_path=state / "deployments.jsonl",
                )
            except DeployError as error:
                outcome = f"refused: {str(error)[:60]}"
            seconds = time.monotonic() - began
            await asyncio.sleep(3)
            stop.set()
            return await task

        tally = asyncio.run(scenario())
        active = good.current()
        ready = httpx.get(f"{started.endpoint}/readyz", timeout=10)
    finally:
        good.stop()
    serving = active.commit[:1] if active else "nothing"
    return [
        (
            "failed deploy",
            "deploy of B (server dies on start)",
            outcome.split(":")[0],
            "refused",
            outcome.startswith("refused"),
        ),
        ("failed deploy", "seconds until the deploy gave up", f"{seconds:.1f}", "", None),
        ("failed deploy", "release serving afterwards", serving.upper(), "A", serving == "a"),
        ("failed deploy", "/readyz afterwards", str(ready.status_code), "200", ready.is_success),
        ("failed deploy", "requests during the deploy: 200", f"{tally.ok:,}", "", None),
        (
            "failed deploy",
            "requests during the deploy: errors",
            str(tally.errors),
            "0",
            not tally.errors,
        ),
    ]


def served_model(url: str, body: dict[str, Any]) -> tuple[str, str]:
    """The model md5 /metadata reports and the model version a prediction names."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    metadata = httpx.get(f"{url}/metadata", headers=headers, timeout=30).json()
    predicted = httpx.post(f"{url}/predict", json=body, headers=headers, timeout=30).json()
    return metadata["model_md5"], predicted[0]["model_version"]


def other_model(env: dict[str, str], work: Path) -> str:
    """Package the project trained with another seed into the same store; its md5."""
    project = work / "other-project"
    for name in filter(None, checked(["git", "ls-files", "-z"], env).split("\0")):
        if (ROOT / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, project / name)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["seed"] = int(params["seed"]) + 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checked(["git", "init", "-q"], env, project)
    # An empty DVC remote of its own: the raw data comes from the registry package.
    remote = ["dvc", "remote", "modify", "--local", "local", "url", str(work / "other-remote")]
    checked(remote, env, project)
    checked(["mlgitops", "data", "fetch"], env, project)
    checked(["dvc", "repro"], env, project)
    checked(["mlgitops", "package", "--repo", str(project)], env, project)
    lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
    return next(
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == "artifacts/model.joblib"
    )


def restart_after_other_package(
    tag: str, env: dict[str, str], work: Path, body: dict[str, Any]
) -> list[tuple]:
    server = serve(tag, env, work / "restart.log")
    try:
        own = served_model(server.url, body)
        other = other_model(env, work)
        workers = server.tree_pids()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        after = None
        while time.monotonic() - killed_at < READY_SECONDS:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                after = served_model(server.url, body)
                break
            time.sleep(0.5)
        back = time.monotonic() - killed_at
    finally:
        server.stop()
    if after is None:
        verdict = "none (no worker came back)"
    elif after == own:
        verdict = f"the release's own ({own[0][:12]})"
    elif after[0] == other:
        verdict = f"the newest packaged ({other[:12]})"
    else:
        verdict = f"another ({after[0][:12]})"
    return [
        (
            "worker restart",
            "worker restart after another model was packaged: model served",
            verdict,
            "the release's own",
            after == own,
        ),
        ("worker restart", "seconds from kill to serving again", f"{back:.1f}", "", None),
    ]


def markdown(rows: list[tuple]) -> str:
    lines = ["| scenario | figure | value | target | met |", "|---|---|---:|---|---|"]
    for scenario, figure, value, target, met in rows:
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {scenario} | {figure} | {value} | {target} | {verdict} |")
    return "\n".join(lines)


PHASES = {
    "soak": soak,
    "kill": kill_mid_load,
    "orphan": orphan_after_arbiter_kill,
    "deploy": failed_deploy,
    "restart": restart_after_other_package,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--only", choices=sorted(PHASES), help="run one phase")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mlgitops-reliability-"))
    env = environment(work / "bentoml", work / "predictions")
    try:
        checked(["mlgitops", "package", "--repo", str(ROOT)], env)
        built = checked(["mlgitops", "bento", "--repo", str(ROOT)], env)
        tag = built.strip().splitlines()[-1].removeprefix("built ")
        model = next((work / "bentoml" / "models" / "mlgitops-pipeline").glob("*/model.yaml"))
        body = {"records": [yaml.safe_load(model.read_text())["metadata"]["example"]]}
        rows: list[tuple] = []
        for name, phase in PHASES.items():
            if args.only and name != args.only:
                continue
            print(f"running {name} ...", file=sys.stderr)
            rows += phase(tag, env, work, body)
        print(markdown(rows))
        return 0 if all(row[4] is not False for row in rows) else 1
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
