"""The `local` target: real `bentoml serve` processes on 127.0.0.1 behind a small proxy.

Each release is a new server on a free port. It is started and health-checked while the
previous one keeps serving; only then does the proxy's active-release file point at it.
The previous server is stopped after the new one passes its smoke test (`retire`), or the
file is pointed back at it when the smoke test fails (`restore`).
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

from mlgitops.config import ServeParams
from mlgitops.deploy.target import DeployError, Release
from mlgitops.serving.commands import serve_command

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
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


def stop_process_group(pid: int | None, *, grace: float = 10.0) -> None:
    """Stop a server and everything it started: SIGTERM its process group, then SIGKILL every
    descendant still alive after `grace` seconds.

    Descendants are listed before signalling because BentoML starts each worker in a session
    of its own: a worker is outside the server's process group, and it would keep serving.
    """
    if not _alive(pid):
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
class LocalTarget:
    """Releases on this machine; state (ports, pids, logs) lives under `state_dir`."""

    state_dir: Path
    port: int = 3000
    ready_timeout: float = 180.0
    env: dict[str, str] | None = None
    # serve.keep_alive_s, for the proxy and the servers alike.
    keep_alive_s: int = ServeParams().keep_alive_s
    name: str = "local"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def _active_file(self) -> Path:
        return self.state_dir / "active.json"

    @property
    def _servers_file(self) -> Path:
        return self.state_dir / "servers.json"

    def _read(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def _write(self, path: Path, payload: dict[str, Any]) -> None:
        # Write then rename: the proxy never sees a half-written file.
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        partial.replace(path)

    def _spawn(self, command: list[str], log_name: str) -> int:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / log_name).open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command; stopped as a group
                env={**os.environ, **(self.env or {})},
            )
        return process.pid

    def check_configured(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        proxy = self._read(self.state_dir / "proxy.json")
        if _alive(proxy.get("pid")):
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
        proxy_file = self.state_dir / "proxy.json"
        proxy = self._read(proxy_file)
        if _alive(proxy.get("pid")):
            return
        pid = self._spawn(
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
        self._write(proxy_file, {"pid": pid, "port": self.port})
        wait_ready_any(self.endpoint, pid=pid, timeout=30)

    def current(self) -> Release | None:
        active = self._read(self._active_file)
        if not active or not _alive(active.get("pid")):
            return None
        return Release("local", active["commit"], active["bento_tag"], None, self.endpoint)

    def release(self, commit: str, bento_tag: str, image: str | None) -> Release:
        self._ensure_proxy()
        port = free_port()
        pid = self._spawn(
            serve_command(bento_tag, host=HOST, port=port, keep_alive_s=self.keep_alive_s),
            f"server-{commit[:12]}-{port}.log",
        )
        servers = self._read(self._servers_file)
        servers[str(pid)] = {"commit": commit, "bento_tag": bento_tag, "port": port}
        self._write(self._servers_file, servers)
        backend = f"http://{HOST}:{port}"
        try:
            wait_ready(f"{backend}/readyz", pid=pid, timeout=self.ready_timeout)
        except DeployError as error:
            stop_process_group(pid)
            log = self.state_dir / "logs" / f"server-{commit[:12]}-{port}.log"
            raise DeployError(
                f"new release {bento_tag} did not become ready: {error}; server log: {log}"
            ) from None
        self._write(
            self._active_file,
            {"commit": commit, "bento_tag": bento_tag, "pid": pid, "backend": backend},
        )
        logger.info(
            "local release %s is serving on %s (backend %s)", bento_tag, self.endpoint, backend
        )
        return Release("local", commit, bento_tag, None, self.endpoint)

    def _server_for(self, release: Release) -> tuple[int, dict[str, Any]] | None:
        for pid, server in self._read(self._servers_file).items():
            if server["commit"] == release.commit and _alive(int(pid)):
                return int(pid), server
        return None

    def restore(self, previous: Release | None) -> None:
        failed = self._read(self._active_file)
        found = self._server_for(previous) if previous else None
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
        if failed and failed.get("pid") != (found[0] if found else None):
            stop_process_group(failed.get("pid"))

    def retire(self, previous: Release | None) -> None:
        """Stop every server except the active one, once the new release passed its checks."""
        active_pid = self._read(self._active_file).get("pid")
        servers = self._read(self._servers_file)
        for pid in list(servers):
            if int(pid) != active_pid:
                stop_process_group(int(pid))
                del servers[pid]
        self._write(self._servers_file, servers)

    def stop(self) -> None:
        """Stop the proxy and every server this target started."""
        for pid in self._read(self._servers_file):
            stop_process_group(int(pid))
        stop_process_group(self._read(self.state_dir / "proxy.json").get("pid"))
        for name in ("servers.json", "active.json", "proxy.json"):
            (self.state_dir / name).unlink(missing_ok=True)


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
