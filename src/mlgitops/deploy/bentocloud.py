"""The BentoCloud target: `bentoml deploy` a bento built from the commit, update, restore.

Set up once:

1. In the BentoCloud console, create an API token with "Developer Operations" access.
2. Give it to the deploy as environment variables (in GitHub, secrets of the `production`
   environment): `BENTO_CLOUD_API_KEY` (the token) and `BENTO_CLOUD_API_ENDPOINT` (your
   organisation's URL, e.g. `https://<org>.cloud.bentoml.com`). The bentoml CLI reads both.
3. Store the service's API keys as a BentoCloud secret the deployment mounts as environment
   variables (the name is `secrets` below):
   `bentoml secret create mlgitops-api-keys MLGITOPS_API_KEYS=<key1,key2>`.

A release of commit C (bento `mlgitops:C`):

- no deployment yet: `bentoml deploy mlgitops:C --name <name> [--cluster ...] [--scaling-min
  ...] [--scaling-max ...] [--instance-type ...] --strategy RollingUpdate --secret <secret>
  --wait --timeout <s>`; bentoml pushes the local bento to BentoCloud first;
- a deployment exists: `bentoml deployment update <name> --bento mlgitops:C [same options]`
  (it pushes too), then `bentoml deployment get <name> --output json` every few seconds until
  it runs bento C, fails, or the timeout passes; if it does not become ready, the previous
  bento is put back with another `update` and DeployError says why.

What serves is read back from `bentoml deployment get`: the bento tag (its version is the
commit) and the endpoint URL, which the smoke test calls.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlgitops.deploy.runner import CommandResult, Runner, run_command
from mlgitops.deploy.settings import BentoCloudDeployParams
from mlgitops.deploy.target import Check, DeployError, DeployTarget, Release
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

API_KEY_ENV = "BENTO_CLOUD_API_KEY"
API_ENDPOINT_ENV = "BENTO_CLOUD_API_ENDPOINT"
READY = frozenset({"running", "scaled-to-zero"})
FAILED = frozenset({"failed", "image-build-failed", "unhealthy", "terminated", "terminating"})
STRATEGIES = ("RollingUpdate", "Recreate", "RampedSlowRollout", "BestEffortControlledRollout")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class BentoCloudTarget(DeployTarget):
    """Releases the bento to a BentoCloud deployment with the bentoml CLI.

    Args:
        settings: `deploy.bentocloud` in params.yaml (deployment name, cluster, scaling,
            instance type, strategy, secrets mounted into it, readiness timeout).
        envs: plain environment variables for the service (never secrets: they are visible on
            the command line and in the console).
        poll_interval_s: seconds between status reads while waiting.
        environ: the environment bentoml runs with, where BENTO_CLOUD_API_KEY and
            BENTO_CLOUD_API_ENDPOINT are read from (default: this process's).
        bentoml: the bentoml executable (default: the one installed with mlgitops).
        runner: runs each command (tests pass one that records them).
        sleep: waits between status reads (tests pass a fake).
        clock: times the wait (tests pass a fake).
    """

    name = "bentocloud"

    def __init__(
        self,
        settings: BentoCloudDeployParams,
        *,
        envs: Mapping[str, str] | None = None,
        poll_interval_s: float = 10.0,
        environ: Mapping[str, str] | None = None,
        bentoml: str | None = None,
        runner: Runner = run_command,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Keep the settings; nothing is checked or touched before `check_configured`."""
        self.deployment = settings.deployment
        self.cluster = settings.cluster
        self.scaling_min = settings.scaling_min
        self.scaling_max = settings.scaling_max
        self.instance_type = settings.instance_type
        self.strategy = settings.strategy
        self.secrets = tuple(settings.secrets)
        self.envs = dict(envs or {})
        self.timeout_s = settings.timeout_s
        self.poll_interval_s = poll_interval_s
        self.environ = os.environ if environ is None else environ
        self.bentoml = bentoml or tool("bentoml")
        self.runner = runner
        self.sleep = sleep
        self.clock = clock
        self._created = False  # the last release created the deployment

    # --- DeployTarget ---------------------------------------------------------------------

    def check_configured(self) -> None:
        """Fail, saying what to set, unless the credentials and the name are usable.

        Raises:
            DeployError: no API key or endpoint, an invalid name or option, no bentoml, or
                BentoCloud refused the credentials or could not be reached.
        """
        if not self.environ.get(API_KEY_ENV, "").strip():
            raise DeployError(
                f"{API_KEY_ENV} is not set: create an API token in the BentoCloud console "
                "(Developer Operations access) and put it in this variable (in GitHub: a "
                "secret of the production environment)"
            )
        endpoint = self.environ.get(API_ENDPOINT_ENV, "").strip()
        if not re.match(r"^https://[^\s/]+", endpoint):
            raise DeployError(
                f"{API_ENDPOINT_ENV} is not set to your organisation's BentoCloud URL "
                f"(got {endpoint!r}; expected e.g. https://<org>.cloud.bentoml.com)"
            )
        if not NAME.match(self.deployment):
            raise DeployError(
                f"deployment name {self.deployment!r} is not valid: lowercase letters, digits "
                "and dashes, at most 63 characters"
            )
        if self.strategy not in STRATEGIES:
            raise DeployError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        self._describe()  # reaches BentoCloud with the credentials: fails fast if they are wrong

    def current(self) -> Release | None:
        """The bento the deployment runs and its endpoint, or None when there is none."""
        info = self._describe()
        if info is None:
            return None
        bento_tag = str(info.get("bento") or "")
        _, _, version = bento_tag.partition(":")
        if not version:
            return None
        urls = info.get("endpoint_urls") or []
        return Release(self.name, version, bento_tag, None, urls[0] if urls else "")

    def release(
        self, commit: str, bento_tag: str, image: str | None, *, check: Check | None = None
    ) -> Release:
        """Deploy or update to `bento_tag` and wait until it runs; put the old bento back if not.

        `image` is not used: BentoCloud builds its own image from the pushed bento. `check` is
        not run here: BentoCloud offers no endpoint that reaches only the new version, so the
        smoke test runs once it serves (`release.release`) and a failure restores the old.

        Raises:
            DeployError: the tag is not the commit's, bentoml failed, or the deployment did not
                become ready (the previous bento was restored first).
        """
        del image, check
        self._created = False
        name, _, version = bento_tag.partition(":")
        if not name or version != commit:
            raise DeployError(
                f"bento tag {bento_tag!r} does not carry the commit {commit} as its version: "
                "build the bento with --version <commit>"
            )
        before = self.current()
        self._created = before is None
        if before is None:
            created = self._bentoml(
                "deploy",
                bento_tag,
                "--name",
                self.deployment,
                *self._options(),
                "--wait",
                "--timeout",
                str(self.timeout_s),
                timeout=self.timeout_s + 300,
            )
            if not created.ok:
                raise DeployError(
                    f"bentoml deploy of {bento_tag} failed: {created.reason()} (this was the "
                    "first release, so nothing else was serving)"
                )
            return self._wait_for(bento_tag)
        if before.bento_tag == bento_tag:
            logger.info("%s already runs %s", self.deployment, bento_tag)
            return self._wait_for(bento_tag)
        self._update(bento_tag, *self._options())
        try:
            return self._wait_for(bento_tag)
        except DeployError as error:
            try:
                self._update(before.bento_tag)
                self._wait_for(before.bento_tag)
            except DeployError as undo_error:
                raise DeployError(f"{error}; and restoring failed too: {undo_error}") from None
            raise DeployError(f"{error}; restored {before.bento_tag}") from None

    def restore(self, previous: Release | None) -> None:
        """Put `previous`'s bento back; terminate a failed first deployment.

        Raises:
            DeployError: the update or the termination failed, or the deployment did not
                become ready on the previous bento.
        """
        serving = self.current()
        if previous is None:
            if self._created and serving is not None:
                logger.warning("terminating %s: its first release failed", self.deployment)
                self._require_ok(
                    self._bentoml("deployment", "terminate", self.deployment, *self._cluster()),
                    "bentoml deployment terminate failed",
                )
            return
        if serving is not None and serving.bento_tag == previous.bento_tag:
            return
        self._update(previous.bento_tag)
        self._wait_for(previous.bento_tag)

    # --- bentoml --------------------------------------------------------------------------

    def _bentoml(self, *args: str, timeout: float = 300) -> CommandResult:
        try:
            return self.runner([self.bentoml, *args], timeout=timeout, env=self.environ)
        except FileNotFoundError:
            raise DeployError(
                f"bentoml is not installed (looked for {self.bentoml!r}): `make venv`"
            ) from None

    def _require_ok(self, result: CommandResult, what: str) -> CommandResult:
        if not result.ok:
            raise DeployError(f"{what}: {result.reason()}")
        return result

    def _cluster(self) -> list[str]:
        return ["--cluster", self.cluster] if self.cluster else []

    def _options(self) -> list[str]:
        """The deployment's configuration, the same on create and update (declarative)."""
        options = self._cluster()
        if self.scaling_min is not None:
            options += ["--scaling-min", str(self.scaling_min)]
        if self.scaling_max is not None:
            options += ["--scaling-max", str(self.scaling_max)]
        if self.instance_type:
            options += ["--instance-type", self.instance_type]
        options += ["--strategy", self.strategy]
        for secret in self.secrets:
            options += ["--secret", secret]
        for key, value in sorted(self.envs.items()):
            options += ["--env", f"{key}={value}"]
        return options

    def _update(self, bento_tag: str, *options: str) -> None:
        self._require_ok(
            self._bentoml(
                "deployment",
                "update",
                self.deployment,
                "--bento",
                bento_tag,
                *(options or self._cluster()),
            ),
            f"bentoml deployment update to {bento_tag} failed",
        )

    def _describe(self) -> dict[str, Any] | None:
        """`bentoml deployment get` as a dict; None when the deployment does not exist."""
        result = self._bentoml(
            "deployment", "get", self.deployment, *self._cluster(), "--output", "json"
        )
        if not result.ok:
            if "not found" in f"{result.stdout}\n{result.stderr}".lower():
                return None
            raise DeployError(
                f"cannot read the BentoCloud deployment {self.deployment!r} ({result.reason()}): "
                f"check {API_KEY_ENV} and {API_ENDPOINT_ENV}"
            )
        text = result.stdout
        try:
            return json.loads(text[text.find("{") : text.rfind("}") + 1])
        except json.JSONDecodeError as error:
            raise DeployError(f"bentoml deployment get printed no JSON: {error}") from None

    def _wait_for(self, bento_tag: str) -> Release:
        """Poll until the deployment runs `bento_tag`.

        The first read comes after one interval, so an update's old "running" status is not
        taken for the new one.
        """
        deadline = self.clock() + self.timeout_s
        status = "unknown"
        while True:
            self.sleep(self.poll_interval_s)
            info = self._describe() or {}
            status = str((info.get("status") or {}).get("status", "unknown"))
            serving = info.get("bento")
            if serving == bento_tag and status in FAILED:
                raise DeployError(f"deployment {self.deployment} is {status} on {bento_tag}")
            if serving == bento_tag and status in READY:
                urls = info.get("endpoint_urls") or []
                if urls:
                    _, _, version = bento_tag.partition(":")
                    logger.info("%s runs %s at %s", self.deployment, bento_tag, urls[0])
                    return Release(self.name, version, bento_tag, None, urls[0])
            if self.clock() >= deadline:
                raise DeployError(
                    f"deployment {self.deployment} did not run {bento_tag} within "
                    f"{self.timeout_s} s (last status: {status}, bento: {serving})"
                )
