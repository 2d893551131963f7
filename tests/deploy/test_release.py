"""Deploy orchestration: verify refuses what was not reviewed, the smoke test finds what is
broken, the record only grows, and a bad target fails before touching anything."""

from __future__ import annotations

import socket
from typing import ClassVar

import pytest

from helpers import StartStub, StubReply, StubRequest, change_a_hyperparameter, run
from mlgitops import deployment_record as record
from mlgitops.cli import main as cli
from mlgitops.deploy.local import LocalTarget
from mlgitops.deploy.release import smoke_test
from mlgitops.deploy.target import DeployError
from mlgitops.deploy.verify import pinned, verify


@pytest.fixture
def reproduced(project_copy):
    """A project copy whose outputs are reproduced and pushed to its local remote."""
    project = project_copy()
    run(["mlgitops", "data", "fetch"], project)
    run(["dvc", "repro"], project)
    run(["dvc", "push"], project)
    return project


@pytest.mark.slow
def test_verify_accepts_the_pinned_workspace(reproduced):
    identity = verify(reproduced)
    assert identity.model_md5 == pinned(reproduced).model_md5
    assert len(identity.commit) == 40


@pytest.mark.slow
def test_verify_refuses_stale_outputs_and_names_them(reproduced):
    (reproduced / "artifacts" / "model.joblib").write_bytes(b"not the reviewed model")
    with pytest.raises(DeployError, match=r"model\.joblib \(modified\)"):
        verify(reproduced)


@pytest.mark.slow
def test_verify_refuses_changed_params(reproduced):
    # Given any estimator the params name, when one of its hyperparameters changes after the
    # pipeline ran, then verify refuses the workspace and names the stale train stage.
    change_a_hyperparameter(reproduced / "params.yaml")
    with pytest.raises(DeployError, match=r"train: params\.yaml \(train modified\)"):
        verify(reproduced)


@pytest.mark.slow
def test_verify_names_a_missing_remote_object(project_copy):
    project = project_copy()  # nothing was ever pushed to its remote
    run(["mlgitops", "data", "fetch"], project)
    with pytest.raises(DeployError, match="the DVC remote lacks pinned outputs"):
        verify(project)


class FakeService:
    """Answers like the service; `behaviour` decides what is broken."""

    behaviour: ClassVar[dict] = {}

    @classmethod
    def answer(cls, request: StubRequest) -> StubReply:
        if request.method == "POST":
            return StubReply(cls.behaviour.get("predict", 200), [{"prediction": "x"}])
        if request.path == "/readyz":
            return StubReply(cls.behaviour.get("ready", 200), {})
        if request.path == "/metadata":
            return StubReply(200, {"model_md5": cls.behaviour.get("model_md5", "abc")})
        return StubReply(404, {})


@pytest.fixture
def fake_service(http_stub: StartStub) -> str:
    return http_stub(FakeService.answer).url


@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [
        ({}, None),
        ({"ready": 503}, "/readyz answered 503"),
        ({"predict": 500}, "/predict answered 500"),
        ({"model_md5": "other"}, "/metadata reports model other, dvc.lock pins abc"),
    ],
)
def test_smoke_test_finds_each_problem(fake_service, behaviour, problem):
    FakeService.behaviour = behaviour
    problems = smoke_test(fake_service, expected_model_md5="abc", example={"a": 1}, api_key="k")
    if problem is None:
        assert problems == [], "a healthy release has no problems"
    else:
        assert problem in " ".join(problems), problems


def test_smoke_test_reports_an_unreachable_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    problems = smoke_test(
        f"http://127.0.0.1:{port}", expected_model_md5="abc", example={}, api_key=None, timeout=2
    )
    assert problems, "an endpoint that does not answer is a problem"
    assert "did not answer" in problems[0]


def test_record_only_grows_and_skips_corrupt_lines(tmp_path):
    path = tmp_path / "deployments.jsonl"
    for outcome in (record.RELEASED, record.ROLLED_BACK):
        record.append(path, record.DeploymentEntry("c1", "m", "d", "mlgitops:c1", "local", outcome))
    with path.open("a") as handle:
        handle.write("{not json\n")
    entries = record.read(path)
    assert [e["outcome"] for e in entries] == ["released", "rolled_back"]
    assert all(e["time"] for e in entries)


def test_local_target_refuses_a_taken_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        target = LocalTarget(state_dir=tmp_path, port=taken.getsockname()[1])
        with pytest.raises(DeployError, match="is taken by another program"):
            target.check_configured()


def test_bad_server_env_fails_before_anything(tmp_path, caplog):
    code = cli(
        [
            "deploy",
            "release",
            "--target",
            "local",
            "--state-dir",
            str(tmp_path),
            "--server-env",
            "NOEQUALS",
        ]
    )
    assert code == 1
    assert "--server-env expects NAME=VALUE" in caplog.text


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "--image is required"),
        ("ghcr.io/octo/demo:latest", "never only 'latest'"),
        ("ghcr.io/octo/demo", "must be the commit"),
    ],
)
def test_containerize_refuses_an_image_not_tagged_with_the_commit(tmp_path, image, message):
    from mlgitops.deploy.bento import containerize
    from mlgitops.deploy.verify import Pinned

    identity = Pinned(commit="a" * 40, model_md5="m", data_md5="d")
    with pytest.raises(DeployError, match=message):
        containerize(tmp_path, identity, image)


def test_unconfigured_kubernetes_target_fails_before_touching_anything(caplog):
    # The default params name no namespace: the release step stops before verify or build.
    code = cli(["deploy", "release", "--target", "kubernetes"])
    assert code == 1
    assert "no Kubernetes namespace configured" in caplog.text


def test_stop_is_refused_for_a_target_that_runs_elsewhere(caplog):
    # Given a remote target, then `mlgitops deploy stop` exits 1 saying it is only for the
    # local target (DeployTarget.stop's default), having touched nothing.
    code = cli(["deploy", "stop", "--target", "kubernetes"])
    assert code == 1
    assert "only for the local target, not kubernetes" in caplog.text


@pytest.mark.parametrize("action", ["verify", "build", "containerize"])
def test_only_release_and_stop_take_a_target(action, capsys):
    # Given an action that builds no target, then naming one is a usage error, not ignored.
    extra = ["--image", "ghcr.io/octo/demo:" + "a" * 40] if action == "containerize" else []
    with pytest.raises(SystemExit) as exited:
        cli(["deploy", action, "--target", "kubernetes", *extra])
    assert exited.value.code == 2
    assert "unrecognized arguments: --target" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lock", "pointer", "message"),
    [
        ("stages: {}\n", "outs:\n- md5: abc\n  path: data\n", "dvc.lock pins no artifacts/model"),
        (None, "outs:\n- md5: abc\n  path: data\n", "dvc.lock does not exist"),
        ("stages: [unclosed\n", "outs: []\n", "dvc.lock is not valid YAML"),
        (
            "stages:\n  train:\n    outs:\n    - path: artifacts/model.joblib\n      md5: m\n",
            "outs: []\n",
            "records no md5",
        ),
    ],
)
def test_pinned_refuses_an_unusable_lock_or_pointer_with_one_clear_error(
    tmp_path, lock, pointer, message
):
    # Given a checkout whose dvc.lock or data.dvc is missing, malformed or pins nothing, then
    # pinned() raises a DeployError saying which (it used to raise IndexError or
    # FileNotFoundError, a traceback from `mlgitops deploy`).
    run(["git", "init", "-q"], tmp_path)
    run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "empty",
        ],
        tmp_path,
    )
    if lock is not None:
        (tmp_path / "dvc.lock").write_text(lock)
    (tmp_path / "data.dvc").write_text(pointer)
    with pytest.raises(DeployError, match=message):
        pinned(tmp_path)
