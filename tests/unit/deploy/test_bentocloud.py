"""The BentoCloud target: the bentoml commands it builds, and what it does when they fail."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from helpers import FakeRunner
from mlgitops.deploy.bentocloud import API_ENDPOINT_ENV, API_KEY_ENV, BentoCloudTarget
from mlgitops.deploy.runner import CommandResult
from mlgitops.deploy.settings import BentoCloudDeployParams
from mlgitops.deploy.target import DeployError, Release

NEW = "0123456789abcdef0123456789abcdef01234567"
OLD = "fedcba9876543210fedcba9876543210fedcba98"
URL = "https://mlgitops-acme.mt-guc1.bentoml.ai"
CONFIGURED = {API_KEY_ENV: "token", API_ENDPOINT_ENV: "https://acme.cloud.bentoml.com"}


class FakeBentoCloud(FakeRunner):
    """One BentoCloud deployment, driven only through the bentoml commands it gets."""

    def __init__(
        self, *, serving: str | None = OLD, unhealthy: Sequence[str] = (), reachable: bool = True
    ) -> None:
        super().__init__()
        self.bento = f"mlgitops:{serving}" if serving else None
        self.unhealthy = {f"mlgitops:{commit}" for commit in unhealthy}
        self.reachable = reachable

    def answer(self, args: list[str]) -> CommandResult:
        match args:
            case ["deployment", "get", "mlgitops", *_, "--output", "json"]:
                if not self.reachable:
                    return CommandResult(1, "", "Error: 401 Unauthorized: invalid API token")
                if self.bento is None:
                    return CommandResult(1, "", "Error: Deployment mlgitops is not found: {}")
                status = "unhealthy" if self.bento in self.unhealthy else "running"
                return CommandResult(0, json.dumps(self.describe(status), indent=2))
            case ["deploy", bento, "--name", "mlgitops", *_]:
                self.bento = bento
                if bento in self.unhealthy:
                    return CommandResult(1, "", 'Deployment "mlgitops" is not ready: "unhealthy"')
                return CommandResult(0, "Created deployment")
            case ["deployment", "update", "mlgitops", "--bento", bento, *_]:
                self.bento = bento
                return CommandResult(0, "Deployment 'mlgitops' updated successfully.")
            case ["deployment", "terminate", "mlgitops", *_]:
                self.bento = None
                return CommandResult(0, "Deployment 'mlgitops' terminated successfully.")
        raise AssertionError(f"unexpected bentoml command: {args}")

    def describe(self, status: str) -> dict[str, Any]:
        return {
            "name": "mlgitops",
            "bento": self.bento,
            "cluster": "default",
            "status": {"status": status, "created_at": "", "updated_at": ""},
            "endpoint_urls": [URL],
        }

    def commands(self) -> list[list[str]]:
        """The calls that change something (every `deployment get` left out)."""
        return [argv for argv in self.calls if argv[1:3] != ["deployment", "get"]]


def make_target(cloud: FakeBentoCloud, **options: Any) -> BentoCloudTarget:
    # deploy.bentocloud settings and the target's own arguments, each overridable by name.
    fields: dict[str, Any] = {"timeout_s": 60}
    extras: dict[str, Any] = {
        "environ": CONFIGURED,
        "runner": cloud,
        "bentoml": "bentoml",
        "sleep": lambda seconds: None,
        "poll_interval_s": 5,
    }
    clock = iter(range(0, 10_000, 5))
    extras["clock"] = lambda: float(next(clock))
    for name, value in options.items():
        (fields if name in BentoCloudDeployParams.model_fields else extras)[name] = value
    # Built without validation: the target's own check must refuse what params.yaml would.
    settings = BentoCloudDeployParams.model_construct(
        **{**BentoCloudDeployParams().model_dump(), **fields}
    )
    return BentoCloudTarget(settings, **extras)


def test_first_release_runs_bentoml_deploy_with_the_configuration():
    # Given no deployment yet, when the commit's bento is released, then `bentoml deploy` runs
    # with the name, the configuration, the secret and --wait, and the release carries the
    # endpoint BentoCloud reports.
    cloud = FakeBentoCloud(serving=None)
    target = make_target(cloud, cluster="gcp-us", scaling_min=1, scaling_max=3, timeout_s=900)
    release = target.release(NEW, f"mlgitops:{NEW}", None)
    assert cloud.commands() == [
        [
            "bentoml",
            "deploy",
            f"mlgitops:{NEW}",
            "--name",
            "mlgitops",
            "--cluster",
            "gcp-us",
            "--scaling-min",
            "1",
            "--scaling-max",
            "3",
            "--strategy",
            "RollingUpdate",
            "--secret",
            "mlgitops-api-keys",
            "--wait",
            "--timeout",
            "900",
        ]
    ], "unexpected bentoml deploy command"
    assert release == Release("bentocloud", NEW, f"mlgitops:{NEW}", None, URL)


def test_existing_deployment_is_updated_to_the_new_bento():
    # Given a deployment serving the old bento, when the new one is released, then
    # `bentoml deployment update --bento` runs and the target waits until it runs it.
    cloud = FakeBentoCloud()
    release = make_target(cloud).release(NEW, f"mlgitops:{NEW}", None)
    assert cloud.commands() == [
        [
            "bentoml",
            "deployment",
            "update",
            "mlgitops",
            "--bento",
            f"mlgitops:{NEW}",
            "--strategy",
            "RollingUpdate",
            "--secret",
            "mlgitops-api-keys",
        ]
    ]
    assert release.commit == NEW, "the release must be the new commit"
    assert cloud.bento == f"mlgitops:{NEW}"


def test_unhealthy_update_restores_the_previous_bento():
    # Given an update whose deployment turns unhealthy, when released, then the previous
    # bento is put back with another update and DeployError says both things.
    cloud = FakeBentoCloud(unhealthy=[NEW])
    with pytest.raises(DeployError, match=f"unhealthy on mlgitops:{NEW}; restored mlgitops:{OLD}"):
        make_target(cloud).release(NEW, f"mlgitops:{NEW}", None)
    updates = [argv[5] for argv in cloud.commands()]
    assert updates == [f"mlgitops:{NEW}", f"mlgitops:{OLD}"], f"updates were {updates}"
    assert cloud.bento == f"mlgitops:{OLD}"


def test_restore_after_a_failed_smoke_test_updates_back():
    # Given a release that ran but failed its smoke test, when the previous release is
    # restored, then the deployment is updated back to the previous bento.
    cloud = FakeBentoCloud()
    target = make_target(cloud)
    target.release(NEW, f"mlgitops:{NEW}", None)
    target.restore(Release("bentocloud", OLD, f"mlgitops:{OLD}", None, URL))
    assert cloud.commands()[-1][:6] == [
        "bentoml",
        "deployment",
        "update",
        "mlgitops",
        "--bento",
        f"mlgitops:{OLD}",
    ]
    assert cloud.bento == f"mlgitops:{OLD}"


def test_failed_first_release_is_terminated_on_restore():
    # Given a first deploy that never became ready, then release() raises and restore(None)
    # terminates it, leaving nothing unhealthy serving.
    cloud = FakeBentoCloud(serving=None, unhealthy=[NEW])
    target = make_target(cloud)
    with pytest.raises(DeployError, match="first release"):
        target.release(NEW, f"mlgitops:{NEW}", None)
    target.restore(None)
    assert cloud.commands()[-1] == ["bentoml", "deployment", "terminate", "mlgitops"]
    assert cloud.bento is None


def test_a_deployment_that_never_runs_the_bento_times_out():
    # Given a deployment that keeps reporting the old bento, then the wait ends at the
    # timeout with the last status, and the previous bento is put back.
    cloud = FakeBentoCloud()
    original = cloud.__call__

    def stuck(argv: Sequence[str], **options: Any) -> CommandResult:
        result = original(argv, **options)
        if argv[1:3] == ["deployment", "update"] and argv[5] == f"mlgitops:{NEW}":
            cloud.bento = f"mlgitops:{OLD}"  # BentoCloud never switches
        return result

    with pytest.raises(DeployError, match=r"did not run .* within 60 s"):
        make_target(cloud, runner=stuck).release(NEW, f"mlgitops:{NEW}", None)


def test_bento_tag_must_carry_the_commit():
    # Given a bento tag whose version is not the commit, then nothing is deployed.
    cloud = FakeBentoCloud()
    with pytest.raises(DeployError, match="does not carry the commit"):
        make_target(cloud).release(NEW, "mlgitops:latest", None)
    assert cloud.commands() == []


def test_current_reads_bento_and_endpoint():
    # Given a running deployment, then current() names its bento, commit and endpoint.
    assert make_target(FakeBentoCloud()).current() == Release(
        "bentocloud", OLD, f"mlgitops:{OLD}", None, URL
    )
    assert make_target(FakeBentoCloud(serving=None)).current() is None


def test_check_configured_passes_with_credentials_and_reads_only():
    # Given the API key and endpoint, then the check passes with one read.
    cloud = FakeBentoCloud()
    make_target(cloud).check_configured()
    assert cloud.commands() == [], "the check changed something"


@pytest.mark.parametrize(
    ("environ", "options", "message"),
    [
        ({API_ENDPOINT_ENV: "https://acme.cloud.bentoml.com"}, {}, API_KEY_ENV),
        ({API_KEY_ENV: "token"}, {}, API_ENDPOINT_ENV),
        ({API_KEY_ENV: "token", API_ENDPOINT_ENV: "acme"}, {}, API_ENDPOINT_ENV),
        (CONFIGURED, {"deployment": "Bad_Name"}, "not valid"),
        (CONFIGURED, {"strategy": "BlueGreen"}, "strategy"),
    ],
)
def test_check_configured_says_what_is_missing(environ, options, message):
    # Given a missing key, endpoint or a bad option, then the check fails before any command.
    cloud = FakeBentoCloud()
    with pytest.raises(DeployError, match=message):
        make_target(cloud, environ=environ, **options).check_configured()
    assert cloud.calls == [], f"bentoml ran: {cloud.calls}"


def test_check_configured_fails_when_bentocloud_refuses_the_token():
    # Given credentials BentoCloud refuses, then the check fails naming the variables.
    with pytest.raises(DeployError, match=r"401.*check BENTO_CLOUD_API_KEY"):
        make_target(FakeBentoCloud(reachable=False)).check_configured()


def test_check_configured_without_bentoml_says_so():
    # Given no bentoml executable, then the check says how to get it.
    def missing(argv: Sequence[str], **_: Any) -> CommandResult:
        raise FileNotFoundError(argv[0])

    with pytest.raises(DeployError, match="bentoml is not installed"):
        make_target(FakeBentoCloud(), runner=missing).check_configured()
