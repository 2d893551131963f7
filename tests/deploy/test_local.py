"""The local target's process bookkeeping with its real proxy: a release is checked before it
takes traffic, the proxy's port is never silently changed, a recorded PID is only signalled
while it is still our server, and state is kept per checkout.

`bentoml serve` is replaced by a stand-in HTTP server (a few lines of the standard library that
answer every GET with 200 and their own port), so these run in seconds; the lifecycle tier runs
the same target with real BentoML servers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import psutil
import pytest

from helpers import PROJECT_ROOT
from mlgitops import deployment_record as record
from mlgitops.cli import main as cli
from mlgitops.deploy import local
from mlgitops.deploy.local import LocalTarget, free_port, started_at
from mlgitops.deploy.target import Check, DeployError, SmokeTestFailed

# Stand-in for `bentoml serve`: answers every GET with 200 and the port it listens on.
STAND_IN = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[1].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


@pytest.fixture(autouse=True)
def stand_in_server(monkeypatch):
    def command(target: str, *, host: str, port: int, keep_alive_s: int) -> list[str]:
        return [sys.executable, "-c", STAND_IN, str(port)]

    monkeypatch.setattr(local, "serve_command", command)


@pytest.fixture
def target(tmp_path):
    made = LocalTarget(state_dir=tmp_path / "state", port=free_port(), ready_timeout=30)
    yield made
    made.stop()


def servers(target: LocalTarget) -> dict:
    return json.loads((target.state_dir / "servers.json").read_text())


def active(target: LocalTarget) -> dict:
    path = target.state_dir / "active.json"
    return json.loads(path.read_text()) if path.exists() else {}


def through_proxy(target: LocalTarget) -> str:
    return httpx.get(f"{target.endpoint}/anything", timeout=10).text


def test_release_is_checked_on_its_own_port_before_it_takes_traffic(target):
    # Given a release serving, when the next one is released, then the check sees the new
    # server's own URL while the proxy still points at the previous one, and only afterwards
    # does traffic reach the new one.
    first = target.release("a" * 40, "mlgitops:a", None)
    first_backend = active(target)["backend"]
    seen: list[tuple[str, str, str]] = []

    def check(url: str) -> list[str]:
        seen.append((url, active(target)["backend"], through_proxy(target)))
        return []

    second = target.release("b" * 40, "mlgitops:b", None, check=Check("md5", check))
    ((checked_url, backend_then, answered_then),) = seen
    assert checked_url != target.endpoint, "the check went through the live endpoint"
    assert backend_then == first_backend, "traffic moved before the check"
    assert answered_then == first_backend.rsplit(":", 1)[1], "live traffic reached the new one"
    assert active(target)["backend"] == checked_url, "the checked server is not the active one"
    assert through_proxy(target) == checked_url.rsplit(":", 1)[1]
    assert (first.commit, second.commit) == ("a" * 40, "b" * 40)


def test_release_failing_its_check_never_takes_traffic_and_is_forgotten(target):
    # Given a release serving, when the next one fails its check, then SmokeTestFailed carries
    # the problems, the proxy still answers from the previous server, and the failed server is
    # stopped and no longer recorded.
    target.release("a" * 40, "mlgitops:a", None)
    before = active(target)
    with pytest.raises(SmokeTestFailed) as failed:
        target.release("b" * 40, "mlgitops:b", None, check=Check("md5", lambda url: ["wrong"]))
    assert failed.value.problems == ["wrong"]
    assert active(target) == before, "the active release changed"
    assert through_proxy(target) == before["backend"].rsplit(":", 1)[1]
    assert list(servers(target)) == [str(before["pid"])], "the failed server is still recorded"


def test_a_port_unlike_the_running_proxys_is_refused_naming_both(target):
    # Given the proxy serving on one port, when a release asks for another port on the same
    # state, then it is refused before anything starts, and the message names both ports.
    target.release("a" * 40, "mlgitops:a", None)
    moved = LocalTarget(state_dir=target.state_dir, port=free_port())
    with pytest.raises(DeployError) as refused:
        moved.check_configured()
    assert str(target.port) in str(refused.value), "the running proxy's port is not named"
    assert str(moved.port) in str(refused.value), "the asked port is not named"
    with pytest.raises(DeployError):
        moved.release("b" * 40, "mlgitops:b", None)
    assert len(servers(target)) == 1, "a server was started anyway"


def dead_pid() -> tuple[int, float]:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    start = started_at(process.pid)
    process.wait()
    return process.pid, start


def test_dead_and_reused_pids_are_forgotten_and_never_signalled(target):
    # Given servers.json recording a server that exited and one whose PID now belongs to an
    # unrelated process (a start time unlike the one recorded), when the target retires and
    # stops, then neither is signalled and both are forgotten.
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone, gone_start = dead_pid()
        target.state_dir.mkdir(parents=True)
        recorded = {
            str(gone): {"commit": "c" * 40, "bento_tag": "t", "port": 1, "started": gone_start},
            str(unrelated.pid): {
                "commit": "d" * 40,
                "bento_tag": "t",
                "port": 2,
                "started": started_at(unrelated.pid) - 3600,
            },
        }
        (target.state_dir / "servers.json").write_text(json.dumps(recorded))
        assert target.current() is None
        assert servers(target) == {}, "dead or reused PIDs are still recorded"
        (target.state_dir / "servers.json").write_text(json.dumps(recorded))
        target.retire(None)
        (target.state_dir / "servers.json").write_text(json.dumps(recorded))
        target.stop()
        time.sleep(0.5)
        assert unrelated.poll() is None, "an unrelated process was signalled"
    finally:
        unrelated.kill()
        unrelated.wait()


def test_restore_forgets_the_failed_server(target):
    # Given a release that became active, when it is restored away (its later check failed),
    # then its server is stopped and no longer recorded.
    target.release("a" * 40, "mlgitops:a", None)
    failed_pid = active(target)["pid"]
    target.restore(None)
    assert servers(target) == {}, "the failed server is still recorded"
    assert not psutil.pid_exists(failed_pid) or psutil.Process(failed_pid).status() == "zombie"


def test_state_is_kept_per_checkout_unless_moved(tmp_path):
    # Given two checkouts, then each has a state directory of its own, stable for a path;
    # MLGITOPS_LOCAL_STATE moves it.
    one, other = tmp_path / "one" / "project", tmp_path / "other" / "project"
    for folder in (one, other):
        folder.mkdir(parents=True)
    environ: dict[str, str] = {}
    assert record.local_state_dir(one, environ) != record.local_state_dir(other, environ)
    assert record.local_state_dir(one, environ) == record.local_state_dir(one, environ)
    moved = {record.STATE_ENV: str(tmp_path / "moved")}
    assert record.local_state_dir(one, moved) == tmp_path / "moved"


def test_stopping_one_checkout_leaves_another_serving(tmp_path, monkeypatch):
    # Given checkout B's release serving from its default state, when checkout A runs
    # `mlgitops deploy stop --target local` with its default state, then B still serves.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(record.STATE_ENV, raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    for project in (a, b):
        project.mkdir()
        (project / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    b_target = LocalTarget(state_dir=record.local_state_dir(b), port=free_port(), ready_timeout=30)
    try:
        b_target.release("b" * 40, "mlgitops:b", None)
        assert cli(["deploy", "stop", "--target", "local", "--repo", str(a)]) == 0
        assert through_proxy(b_target), "checkout A stopped checkout B's release"
        assert b_target.current() is not None
    finally:
        b_target.stop()


def test_readers_find_the_fetched_record_else_the_local_one(tmp_path):
    # Given a checkout, the record readers use is the local target's for it, unless a record
    # fetched from GitHub is in the checkout.
    environ = {record.STATE_ENV: str(tmp_path / "state")}
    repo = tmp_path / "repo"
    repo.mkdir()
    assert record.find(repo, environ) == tmp_path / "state" / record.FILE_NAME
    (repo / record.FILE_NAME).write_text("")
    assert record.find(repo, environ) == repo / record.FILE_NAME


def test_a_hidden_temporary_directory_stops_the_build_naming_the_cause(tmp_path, monkeypatch):
    # Given a temporary directory below a hidden folder, when the bento is built, then it stops
    # before BentoML runs, naming the hidden folder and the variable that moves it.
    from mlgitops.serving.bento import BentoBuildError, build_bento

    hidden = tmp_path / ".hidden-tmp"
    hidden.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(hidden))
    with pytest.raises(BentoBuildError, match=r"'\.hidden-tmp'.*TMPDIR"):
        build_bento(PROJECT_ROOT, model_tag="mlgitops-pipeline:any")


@pytest.mark.parametrize("target_name", ["local", "kubernetes"])
def test_a_release_tells_the_workflow_where_its_record_is(
    tmp_path, monkeypatch, target_name, step_outputs
):
    # Given a release that fails before it starts anything (the local target's port is held by
    # another program; no kubeconfig for the cluster), then the step output `record` still
    # names the record the release appends to, so deploy.yml uploads the right file: the
    # local target's state directory, else deployments.jsonl in the working directory.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    monkeypatch.delenv("MLGITOPS_KUBECONFIG", raising=False)
    monkeypatch.chdir(repo)
    state = tmp_path / "state"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        extra = ["--state-dir", str(state), "--port", str(held.getsockname()[1])]
        code = cli(
            ["deploy", "release", "--target", target_name, "--repo", str(repo)]
            + (extra if target_name == "local" else [])
        )
    assert code == 1, "the release should have been refused before it started"
    outputs = step_outputs()
    expected = state / record.FILE_NAME if target_name == "local" else repo / record.FILE_NAME
    assert outputs.get("record") == str(expected.resolve()), (
        f"record output {outputs!r}, expected {expected}"
    )
