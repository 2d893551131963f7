"""Real servers for the tests (`mlgitops serve`, as users run it), on free 127.0.0.1 ports.

A private BentoML home with the packaged model (`Home`, `packaged_home`), a bento built from
it (`build_bento`), and servers started (`start_server`), awaited (`wait_ready`) and stopped
with their whole process tree (`Server.stop`). The service, monitor and reliability tiers
share it; a module rather than conftest code, so test files import it by name.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from helpers import PROJECT_ROOT
from mlgitops.deploy.local import free_port, stop_process_group
from mlgitops.serving.package import MODEL_TAG_ENV, workspace_model_tag
from mlgitops.serving.server import SERVICE_TARGET

STARTUP_SECONDS = 90
API_KEYS = ("reliability-key-3f9a1c", "reliability-key-7be402")


@dataclass
class Home:
    """A private BentoML home holding the packaged model, and where servers write."""

    root: Path
    keys: tuple[str, ...] = API_KEYS
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def env(self) -> dict[str, str]:
        """The servers' environment: the test interpreter's tools, this home, the keys."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"PROMETHEUS_MULTIPROC_DIR", "MLGITOPS_MODEL_TAG", "MLGITOPS_MODEL_KEY"}
        }
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            BENTOML_HOME=str(self.bentoml_home),
            BENTOML_DO_NOT_TRACK="True",
            DVC_NO_ANALYTICS="1",
            MLGITOPS_API_KEYS=",".join(self.keys),
            MLGITOPS_PREDICTION_LOG_DIR=str(self.predictions),
            **self.extra_env,
        )
        return env

    def model_dir(self) -> Path:
        """The packaged model's folder in the model store (the only version there)."""
        (folder,) = [
            path
            for path in (self.bentoml_home / "models" / "mlgitops-pipeline").iterdir()
            if path.is_dir() and not path.is_symlink()
        ]
        return folder


@dataclass
class Server:
    """One running `bentoml serve`."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """Stop the server and every process it started (workers run in sessions of their own)."""
        stop_process_group(self.process.pid, grace=20)
        self.process.wait(timeout=10)


def start_server(
    home: Home,
    target: str = SERVICE_TARGET,
    *,
    log_name: str = "serve.log",
    extra_args: Sequence[str] = (),
    project: Path = PROJECT_ROOT,
) -> Server:
    """Start `mlgitops serve target [extra_args]` on a free loopback port, without waiting.

    `project` holds the params.yaml (and, from source, the dvc.lock) it serves with.

    With `--ssl-certfile` among `extra_args` the server speaks HTTPS, and its url says so.
    """
    port = free_port()
    log = home.root / log_name
    scheme = "https" if "--ssl-certfile" in extra_args else "http"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                "mlgitops",
                "serve",
                target,
                "--port",
                str(port),
                "--params",
                str(project / "params.yaml"),
                *extra_args,
            ],
            cwd=home.root,
            env=home.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process=process, url=f"{scheme}://127.0.0.1:{port}", log=log)


WORKER_MODULE = "_bentoml_impl.worker.service"


def workers_of(pid: int) -> list[psutil.Process]:
    """The BentoML worker processes of the server `pid` (each in a session of its own)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if WORKER_MODULE in " ".join(child.cmdline()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # a killed worker not reaped yet
    return found


def kill_workers_and_wait(pid: int, url: str, timeout: float = STARTUP_SECONDS) -> None:
    """`kill -9` every worker of the server `pid`, then wait until BentoML has started new
    ones and `url`/readyz answers 200 again."""
    killed = {worker.pid for worker in workers_of(pid)}
    assert killed, "no BentoML worker found to kill"
    for worker in killed:
        os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(worker.pid not in killed for worker in workers_of(pid)):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"no worker of {pid} came back within {timeout:.0f} s of kill -9")


def wait_ready(
    server: Server, timeout: float = STARTUP_SECONDS, *, verify: ssl.SSLContext | bool = True
) -> None:
    """Wait until `/readyz` answers 200 (`verify`: the TLS trust, for an HTTPS server)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"bentoml serve exited:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"not ready in time:\n{server.log.read_text()[-3000:]}")
        time.sleep(0.5)


def packaged_home(
    root: Path,
    project: Path,
    extra_env: dict[str, str] | None = None,
    *,
    keys: tuple[str, ...] = API_KEYS,
) -> Home:
    """A new BentoML home under `root` with the project's model packaged into it.

    `extra_env` (e.g. a model key) is given to every command of the home, packaging included;
    its servers accept `keys` and serve that model (`MLGITOPS_MODEL_TAG` in `extra_env`).
    """
    home = Home(root=root, keys=keys, extra_env=dict(extra_env or {}))
    root.mkdir(parents=True, exist_ok=True)
    result = package_into(home, project)
    assert result.returncode == 0, f"mlgitops package: {result.stdout}\n{result.stderr}"
    # Its servers from source serve this model (what `mlgitops serve` picks from the project's
    # dvc.lock); a bento built from it pins it.
    home.extra_env[MODEL_TAG_ENV] = workspace_model_tag(project)
    return home


def package_into(home: Home, project: Path) -> subprocess.CompletedProcess[str]:
    """`mlgitops package` of the project into `home`, with the home's environment."""
    return subprocess.run(
        ["mlgitops", "package", "--repo", str(project)],
        cwd=project,
        env=home.env(),
        capture_output=True,
        text=True,
        check=False,
    )


def build_bento(home: Home, project: Path = PROJECT_ROOT) -> str:
    """`mlgitops bento`'s build of the service into `home`, pinned to the home's model; the
    bento's tag."""
    from mlgitops.serving.bento import build_bento as build

    return build(project, model_tag=home.extra_env[MODEL_TAG_ENV], env=home.env())
