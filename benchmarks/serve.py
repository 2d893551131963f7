"""Serving benchmark: the BentoML service vs a minimal FastAPI + uvicorn app, same model.

Run with `make bench-serve`. Both servers load the same packaged pipeline, run with the same
worker count (`serve.workers`) on 127.0.0.1, and face the same load from one asyncio client:
single-record requests at several concurrencies, then 1,000-record requests. The floor is
in-process `predict_proba` on one row.

Both servers run side by side for the whole benchmark and every scenario is measured in
rounds that alternate between them, so a noisy neighbour on a shared machine slows both
alike instead of whichever happened to run then. Each round runs for a fixed time, so the
whole run is bounded; peak memory is the largest resident set of the server's process tree.
The run ends with the targets (issue #4) and exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlgitops.deploy.local import free_port, stop_process_group, wait_ready
from mlgitops.deploy.target import DeployError
from mlgitops.serving.package import MODEL_TAG_ENV, workspace_model_tag
from mlgitops.serving.server import SERVICE_TARGET, serve_command

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
SINGLE_CONCURRENCY = (1, 8, 32, 64)
BATCH_ROWS = 1000
BATCH_CONCURRENCY = (1, 4)
ROUNDS = 4
# Targets: at this concurrency, the service's throughput is at least FastAPI's ...
THROUGHPUT_CONCURRENCY = 32
# ... and at concurrency 1 its p99 latency is at most this multiple of FastAPI's.
P99_RATIO_LIMIT = 1.5
MODEL_PATH_ENV = "MLGITOPS_BENCH_MODEL"


# --- the FastAPI baseline (started by this script in its own process) ---------------------


class Body(BaseModel):
    """The same body as the service's: a list of records (here, unchecked mappings)."""

    records: list[dict[str, Any]]


def fastapi_app() -> Any:
    """A minimal FastAPI app serving the same pipeline: no validation, auth or logging."""
    import joblib
    import pandas as pd
    from fastapi import FastAPI

    model = joblib.load(os.environ[MODEL_PATH_ENV])
    classes = [str(c) for c in model.classes_]
    app = FastAPI()

    @app.post("/predict")
    def predict(body: Body) -> list[dict[str, Any]]:
        proba = model.predict_proba(pd.DataFrame.from_records(body.records))
        return [
            {
                "prediction": classes[row.argmax()],
                "probabilities": dict(zip(classes, row.tolist(), strict=True)),
            }
            for row in proba
        ]

    @app.get("/readyz")
    def ready() -> str:
        return "ok"

    return app


# --- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    headers: dict[str, str]

    def stop(self) -> None:
        stop_process_group(self.process.pid, grace=20)
        self.process.wait(timeout=10)


def start(
    name: str, command: list[str], env: dict[str, str], port: int, log: Path, **extra: Any
) -> Server:

    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **extra,
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", {})
    try:
        wait_ready(f"{server.url}/readyz", pid=process.pid, timeout=120)
    except DeployError as error:
        server.stop()
        raise RuntimeError(f"{name}: {error}:\n{log.read_text()[-2000:]}") from None
    return server


class PeakMemory:
    """Samples the resident memory of a process and its children in a background thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --- load ---------------------------------------------------------------------------------


@dataclass
class Result:
    """One scenario against one server, pooled over its rounds."""

    server: str
    request: str
    concurrency: int
    rows: int
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    peak_mib: float | None = None

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def load(
    url: str, headers: dict[str, str], body: bytes, concurrency: int, seconds: float
) -> tuple[list[float], int, int, float]:
    """Keep `concurrency` requests in flight for `seconds`; latencies of the successful ones."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {**headers, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, done
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                done += 1
                if ok:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors, done, time.perf_counter() - started


def warm_up(server: Server, body: bytes) -> None:
    """First calls pay for lazy imports; BentoML's batcher also calibrates itself."""
    asyncio.run(load(f"{server.url}/predict", server.headers, body, 4, 2.0))


def run_interleaved(
    servers: list[Server], bodies: dict[str, tuple[bytes, int]], seconds: float
) -> list[Result]:
    """Every scenario against every server, in `ROUNDS` rounds that alternate the servers."""
    plan = [("1 row", c) for c in SINGLE_CONCURRENCY] + [
        (f"{BATCH_ROWS:,} rows", c) for c in BATCH_CONCURRENCY
    ]
    results = {
        (server.name, request, concurrency): Result(
            server.name, request, concurrency, bodies[request][1]
        )
        for server in servers
        for request, concurrency in plan
    }
    for request, concurrency in plan:
        body = bodies[request][0]
        for round_ in range(ROUNDS):
            # Alternate who goes first, so neither always follows the other's load.
            order = servers if round_ % 2 == 0 else servers[::-1]
            for server in order:
                result = results[(server.name, request, concurrency)]
                with PeakMemory(server.process.pid) as memory:
                    latencies, errors, done, elapsed = asyncio.run(
                        load(
                            f"{server.url}/predict",
                            server.headers,
                            body,
                            concurrency,
                            seconds / ROUNDS,
                        )
                    )
                result.latencies += latencies
                result.errors += errors
                result.requests += done
                result.seconds += elapsed
                result.peak_mib = max(result.peak_mib or 0.0, memory.peak / 2**20)
        for server in servers:
            result = results[(server.name, request, concurrency)]
            print(
                f"  {server.name:<18} {request:>10} x{concurrency:<3} "
                f"{result.throughput:8.1f} req/s, {result.errors} errors",
                file=sys.stderr,
            )
    return list(results.values())


def in_process_floor(model_path: Path, example: dict[str, Any], seconds: float) -> Result:
    import joblib

    from mlgitops.params import load_params
    from mlgitops.serving.schema import typed_frame

    model = joblib.load(model_path)
    row = typed_frame([example], load_params(ROOT / "params.yaml").contract)
    model.predict_proba(row)
    latencies = []
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop_at:
        began = time.perf_counter()
        model.predict_proba(row)
        latencies.append(time.perf_counter() - began)
    return Result(
        "in-process predict",
        "1 row",
        1,
        1,
        requests=len(latencies),
        seconds=time.perf_counter() - started,
        latencies=latencies,
    )


def markdown(results: list[Result]) -> str:
    lines = [
        "| server | request | concurrency | requests/s | rows/s | p50 ms | p99 ms | errors "
        "| peak memory MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: r.server != "in-process predict"):
        memory = "" if r.peak_mib is None else f"{r.peak_mib:,.0f}"
        lines.append(
            f"| {r.server} | {r.request} | {r.concurrency} | {r.throughput:,.1f} | "
            f"{r.throughput * r.rows:,.0f} | {r.quantile(0.5):.1f} | {r.quantile(0.99):.1f} | "
            f"{r.errors} | {memory} |"
        )
    return "\n".join(lines)


def verdict(results: list[Result], service: str, baseline: str) -> list[tuple[str, str, bool]]:
    """The targets: what each one asks, what was measured, and whether it is met."""

    def find(server: str, concurrency: int) -> Result:
        return next(
            r
            for r in results
            if r.server == server and r.request == "1 row" and r.concurrency == concurrency
        )

    ours, theirs = find(service, THROUGHPUT_CONCURRENCY), find(baseline, THROUGHPUT_CONCURRENCY)
    ratio = find(service, 1).quantile(0.99) / find(baseline, 1).quantile(0.99)
    errors = sum(r.errors for r in results if r.server == service)
    return [
        (
            f"throughput at concurrency {THROUGHPUT_CONCURRENCY} ≥ FastAPI's",
            f"{ours.throughput:,.1f} vs {theirs.throughput:,.1f} requests/s",
            ours.throughput >= theirs.throughput,
        ),
        (
            f"p99 at concurrency 1 ≤ {P99_RATIO_LIMIT}x FastAPI's",
            f"{find(service, 1).quantile(0.99):.1f} vs {find(baseline, 1).quantile(0.99):.1f} "
            f"ms ({ratio:.2f}x)",
            ratio <= P99_RATIO_LIMIT,
        ),
        ("zero errors", f"{errors} errors in all scenarios", errors == 0),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="per scenario and server (default 12)"
    )
    args = parser.parse_args(argv)

    import json

    from mlgitops.params import load_params
    from mlgitops.serving.package import MODEL_FILE

    serve = load_params(ROOT / "params.yaml").serve
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    bin_dir = Path(sys.executable).parent
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            # Without a model key: the FastAPI baseline reads the packaged model file itself.
            if k not in {"PROMETHEUS_MULTIPROC_DIR", "MLGITOPS_MODEL_TAG", "MLGITOPS_MODEL_KEY"}
        },
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "BENTOML_HOME": str(workdir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "MLGITOPS_API_KEYS": API_KEY,
        "MLGITOPS_PREDICTION_LOG_DIR": str(workdir / "predictions"),
        # Served from source: the model dvc.lock pins, as `mlgitops serve` picks it.
        MODEL_TAG_ENV: workspace_model_tag(ROOT),
    }
    try:
        packaged = subprocess.run(
            ["mlgitops", "package"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if packaged.returncode != 0:
            print(packaged.stderr, file=sys.stderr)
            return 1
        os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]
        import bentoml

        stored = bentoml.models.get(env[MODEL_TAG_ENV])
        example = dict(stored.info.metadata["example"])
        model_path = Path(stored.path) / MODEL_FILE
        bodies = {
            "1 row": (json.dumps({"records": [example]}).encode(), 1),
            f"{BATCH_ROWS:,} rows": (
                json.dumps({"records": [example] * BATCH_ROWS}).encode(),
                BATCH_ROWS,
            ),
        }
        results = [in_process_floor(model_path, example, min(args.seconds, 3.0))]
        servers: list[Server] = []
        try:
            port = free_port()
            bento = start(
                "BentoML service",
                serve_command(
                    SERVICE_TARGET, host="127.0.0.1", port=port, keep_alive_s=serve.keep_alive_s
                ),
                env,
                port,
                workdir / "bentoml.log",
                cwd=workdir,
            )
            bento.headers = {"Authorization": f"Bearer {API_KEY}"}
            servers.append(bento)
            port = free_port()
            servers.append(
                start(
                    "FastAPI + uvicorn",
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "serve:fastapi_app",
                        "--factory",
                        "--app-dir",
                        str(ROOT / "benchmarks"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        str(serve.workers),
                        "--timeout-keep-alive",
                        str(serve.keep_alive_s),
                        "--log-level",
                        "warning",
                    ],
                    {**env, MODEL_PATH_ENV: str(model_path)},
                    port,
                    workdir / "fastapi.log",
                    cwd=workdir,
                )
            )
            for server in servers:
                warm_up(server, bodies["1 row"][0])
            results += run_interleaved(servers, bodies, args.seconds)
        finally:
            for server in servers:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"workers: {serve.workers}, adaptive batching: {serve.adaptive_batching}, "
        f"{args.seconds:g} s per scenario and server in {ROUNDS} alternating rounds, "
        "one asyncio client (aiohttp) on the same machine\n"
    )
    print(markdown(results))
    targets = verdict(results, "BentoML service", "FastAPI + uvicorn")
    print("\n| target | measured | met |\n|---|---|---|")
    for target, measured, met in targets:
        print(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
    return 0 if all(met for _, _, met in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
