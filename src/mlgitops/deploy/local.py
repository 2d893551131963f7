"""The `local` target: real `bentoml serve` processes on 127.0.0.1 behind a small proxy.

Each release is a new server on a free port. It is started, health-checked and smoke-tested
on its own port while the previous one keeps serving; only then does the proxy's
active-release file point at it, so a wrong model never answers live traffic. The previous
server is stopped once the new one serves (`retire`); a failed release is stopped and forgotten
(`restore`). Every process is recorded with its start time, and a recorded PID is only ever
signalled while it is still that process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlgitops.deploy.settings import LocalDeployParams
from mlgitops.deploy.target import Check, DeployError, DeployTarget, Release, SmokeTestFailed
from mlgitops.serving.package import EXPECTED_MODEL_MD5_ENV
from mlgitops.serving.server import serve_command
from mlgitops.serving.settings import ServeParams

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


# Seconds two start times of one process may differ by (psutil derives it from boot time).
START_TIME_TOLERANCE_S = 0.05


def started_at(pid: int) -> float | None:
    """The start time of process `pid` (seconds since the epoch), None when there is none."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


def is_ours(pid: int | None, recorded_start: float | None) -> bool:
    """Whether `pid` is alive and still the process started at `recorded_start`.

    A PID is reused once its process exits: only the start time recorded when the target
    started it tells the server apart from an unrelated process that later got its number.
    """
    if not pid or recorded_start is None or not _alive(pid):
        return False
    start = started_at(pid)
    return start is not None and abs(start - recorded_start) <= START_TIME_TOLERANCE_S


def stop_process_group(pid: int | None, *, grace: float = 10.0) -> None:
    """Stop a server and everything it started.

    SIGTERM its process group, then SIGKILL every descendant still alive after `grace` seconds.

    Descendants are listed before signalling because BentoML starts each worker in a session
    of its own: a worker is outside the server's process group, and it would keep serving.
    """
    if pid is None or not _alive(pid):
        return
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    for process in tree[1:]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    _alive(pid)  # reap it if it is our child


def wait_ready(url: str, *, pid: int | None, timeout: float) -> None:
    """Poll `url` until it answers 200.

    Raises:
        DeployError: when the process exits first or `timeout` passes.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            raise DeployError(f"the server process exited before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.25)
    raise DeployError(f"{url} was not ready after {timeout:.0f} s ({last})")


@dataclass
class LocalTarget(DeployTarget):
    """Releases on this machine; state (ports, pids, logs) lives under `state_dir`."""

    state_dir: Path
    port: int = 3000
    ready_timeout: float = 180.0
    env: dict[str, str] | None = None
    # serve.keep_alive_s, for the proxy and the servers alike.
    keep_alive_s: int = ServeParams().keep_alive_s
    name: str = "local"

    @classmethod
    def from_params(
        cls,
        settings: LocalDeployParams,
        *,
        serve: ServeParams,
        state_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> LocalTarget:
        """The target of `deploy.local` (and serve's keep-alive), with the command line's extras.

        Args:
            settings: `deploy.local` in params.yaml.
            serve: `serve` in params.yaml (the proxy and servers share its keep-alive).
            state_dir: where the servers, proxy, logs and record are kept.
            port: the proxy's port instead of `settings.port`.
            env: extra environment for the servers (e.g. API keys).
        """
        return cls(
            state_dir=state_dir,
            port=port or settings.port,
            ready_timeout=settings.ready_timeout_s,
            env=env,
            keep_alive_s=serve.keep_alive_s,
        )

    @property
    def endpoint(self) -> str:
        """The proxy's base URL, which every release is reached through."""
        return f"http://{HOST}:{self.port}"

    @property
    def _active_file(self) -> Path:
        return self.state_dir / "active.json"

    @property
    def _servers_file(self) -> Path:
        return self.state_dir / "servers.json"

    @property
    def _proxy_file(self) -> Path:
        return self.state_dir / "proxy.json"

    def _read(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def _write(self, path: Path, payload: dict[str, Any]) -> None:
        # Write then rename: the proxy never sees a half-written file.
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        partial.replace(path)

    def _spawn(
        self, command: list[str], log_name: str, *, extra_env: dict[str, str] | None = None
    ) -> tuple[int, float]:
        """Start `command` in a session of its own; its PID and start time."""
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / log_name).open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command; stopped as a group
                env={**os.environ, **(self.env or {}), **(extra_env or {})},
            )
        return process.pid, started_at(process.pid) or time.time()

    def _proxy(self) -> dict[str, Any] | None:
        """The running proxy's record, None when it is not running (or not ours any more)."""
        proxy = self._read(self._proxy_file)
        return proxy if is_ours(proxy.get("pid"), proxy.get("started")) else None

    def _servers(self) -> dict[str, dict[str, Any]]:
        """The servers this target started that are still running; the others are forgotten."""
        recorded = self._read(self._servers_file)
        running = {
            pid: server
            for pid, server in recorded.items()
            if is_ours(int(pid), server.get("started"))
        }
        if running != recorded:
            gone = sorted(set(recorded) - set(running), key=int)
            logger.info("forgetting servers that are no longer running: %s", ", ".join(gone))
            self._write(self._servers_file, running)
        return running

    def _stop_server(self, pid: int) -> None:
        """Stop one recorded server (only if it is still ours) and forget it."""
        servers = self._read(self._servers_file)
        server = servers.pop(str(pid), None)
        if server is not None and is_ours(pid, server.get("started")):
            stop_process_group(pid)
        self._write(self._servers_file, servers)

    def check_configured(self) -> None:
        """Fail unless the proxy runs on `port`, or `port` is free for it.

        Raises:
            DeployError: the proxy of this state directory runs on another port, or another
                program holds `port`.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        proxy = self._proxy()
        if proxy is not None:
            if proxy.get("port") != self.port:
                raise DeployError(
                    f"the local target's proxy already serves on port {proxy.get('port')}, but "
                    f"port {self.port} was asked for: deploy with --port {proxy.get('port')}, or "
                    "move it by stopping every local release first (`mlgitops deploy stop "
                    f"--target local`) and deploying again with --port {self.port}"
                )
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, self.port))
            except OSError:
                raise DeployError(
                    f"port {self.port} on {HOST} is taken by another program; free it or set "
                    "a different port for the local target (--port)"
                ) from None

    def _ensure_proxy(self) -> None:
        self.check_configured()
        if self._proxy() is not None:
            return
        pid, started = self._spawn(
            [
                sys.executable,
                "-m",
                "mlgitops.deploy.proxy",
                "--port",
                str(self.port),
                "--active",
                str(self._active_file),
                "--keep-alive",
                str(self.keep_alive_s),
            ],
            "proxy.log",
        )
        self._write(self._proxy_file, {"pid": pid, "port": self.port, "started": started})
        wait_ready_any(self.endpoint, pid=pid, timeout=30)

    def current(self) -> Release | None:
        """The release the proxy sends traffic to, if any."""
        active = self._read(self._active_file)
        server = self._servers().get(str(active.get("pid")))
        if not active or server is None:
            return None
        return Release("local", active["commit"], active["bento_tag"], None, self.endpoint)

    def release(
        self, commit: str, bento_tag: str, image: str | None, *, check: Check | None = None
    ) -> Release:
        """Start a server of `bento_tag`, check it on its own port, then switch traffic to it.

        Args:
            commit: the git commit the bento was built from.
            bento_tag: the bento to serve.
            image: unused here (the local target serves the bento itself).
            check: the smoke test, given the new server's own URL; the problems it returns
                stop the release before the proxy sends it a single request.

        Raises:
            DeployError: the server did not become ready; SmokeTestFailed: `check` found
                problems. Either way the new server is stopped and the active one still serves.
        """
        self._ensure_proxy()
        port = free_port()
        log_name = f"server-{commit[:12]}-{port}.log"
        # The server itself refuses to start with another model than the release's.
        expected = {EXPECTED_MODEL_MD5_ENV: check.model_md5} if check and check.model_md5 else {}
        pid, started = self._spawn(
            serve_command(bento_tag, host=HOST, port=port, keep_alive_s=self.keep_alive_s),
            log_name,
            extra_env=expected,
        )
        servers = self._read(self._servers_file)
        servers[str(pid)] = {
            "commit": commit,
            "bento_tag": bento_tag,
            "port": port,
            "started": started,
        }
        self._write(self._servers_file, servers)
        backend = f"http://{HOST}:{port}"
        try:
            wait_ready(f"{backend}/readyz", pid=pid, timeout=self.ready_timeout)
        except DeployError as error:
            self._stop_server(pid)
            log = self.state_dir / "logs" / log_name
            raise DeployError(
                f"new release {bento_tag} did not become ready: {error}; server log: {log}"
            ) from None
        problems = check.run(backend) if check is not None else []
        if problems:
            self._stop_server(pid)
            raise SmokeTestFailed(problems)
        self._write(
            self._active_file,
            {"commit": commit, "bento_tag": bento_tag, "pid": pid, "backend": backend},
        )
        logger.info(
            "local release %s is serving on %s (backend %s)", bento_tag, self.endpoint, backend
        )
        return Release("local", commit, bento_tag, None, self.endpoint)

    def restore(self, previous: Release | None) -> None:
        """Point the proxy back at `previous`'s server.

        Any other server the failed release made active is stopped and forgotten.
        """
        failed = self._read(self._active_file)
        servers = self._servers()
        found = next(
            (
                (int(pid), server)
                for pid, server in servers.items()
                if previous is not None and server["commit"] == previous.commit
            ),
            None,
        )
        if found is not None:
            pid, server = found
            self._write(
                self._active_file,
                {
                    "commit": server["commit"],
                    "bento_tag": server["bento_tag"],
                    "pid": pid,
                    "backend": f"http://{HOST}:{server['port']}",
                },
            )
        elif self._active_file.exists():
            self._active_file.unlink()
        failed_pid = failed.get("pid")
        if failed_pid and failed_pid != (found[0] if found else None):
            self._stop_server(int(failed_pid))

    def retire(self, previous: Release | None) -> None:
        """Stop every server except the active one, once the new release passed its checks."""
        active_pid = self._read(self._active_file).get("pid")
        for pid in list(self._servers()):
            if int(pid) != active_pid:
                self._stop_server(int(pid))

    def stop(self) -> None:
        """Stop the proxy and every server this target started (and only those)."""
        for pid in list(self._servers()):
            self._stop_server(int(pid))
        proxy = self._proxy()
        if proxy is not None:
            stop_process_group(proxy["pid"])
        for path in (self._servers_file, self._active_file, self._proxy_file):
            path.unlink(missing_ok=True)


def wait_ready_any(url: str, *, pid: int, timeout: float) -> None:
    """Wait until something answers at `url` (any status: the proxy says 503 when idle)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise DeployError(f"the local proxy exited before {url} answered")
        try:
            httpx.get(url + "/livez", timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise DeployError(f"the local proxy at {url} did not start within {timeout:.0f} s")
