"""Release a verified commit, smoke-test it, restore the previous release if it is unhealthy."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx

from mlgitops import deployment_record as record
from mlgitops import layout
from mlgitops.deploy.target import Check, DeployError, DeployTarget, Release, SmokeTestFailed
from mlgitops.deploy.verify import Pinned, run
from mlgitops.params import Params

logger = logging.getLogger(__name__)


def smoke_test(
    endpoint: str,
    *,
    expected_model_md5: str,
    example: dict[str, Any],
    api_key: str | None,
    timeout: float = 30.0,
) -> list[str]:
    """Problems found on a released endpoint: readiness, one prediction, the model hash."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    problems = []
    try:
        with httpx.Client(base_url=endpoint, headers=headers, timeout=timeout) as client:
            ready = client.get("/readyz")
            if ready.status_code != 200:
                problems.append(f"/readyz answered {ready.status_code}")
            predicted = client.post("/predict", json={"records": [example]})
            if predicted.status_code != 200 or not predicted.json():
                problems.append(
                    f"/predict answered {predicted.status_code}: {predicted.text[:300]}"
                )
            metadata = client.get("/metadata")
            served = metadata.json().get("model_md5") if metadata.status_code == 200 else None
            if served != expected_model_md5:
                problems.append(
                    f"/metadata reports model {served}, dvc.lock pins {expected_model_md5}"
                )
    except (httpx.HTTPError, ValueError) as error:
        problems.append(f"{endpoint} did not answer properly: {error}")
    return problems


def example_request(repo: Path, params: Params) -> dict[str, Any]:
    """A known-good record for the smoke test: the first test row, as the API takes it."""
    from mlgitops.contract.check import load_valid_table
    from mlgitops.serving.package import example_record

    if not (repo / layout.TEST_PATH).exists():  # a fresh checkout, as in the release job
        fetched = run(["dvc", "pull", layout.TEST_PATH], repo)
        if fetched.returncode != 0:
            raise DeployError(
                f"the smoke test needs {layout.TEST_PATH} from the DVC remote: "
                f"{fetched.stderr.strip()}"
            )
    return example_record(load_valid_table(repo / layout.TEST_PATH, params.contract), params)


def first_api_key(params: Params) -> str | None:
    """The first API key the service accepts (from serve.api_keys_env), for the smoke test."""
    keys = [k.strip() for k in os.environ.get(params.serve.api_keys_env, "").split(",")]
    return next((k for k in keys if k), None)


def release(
    repo: Path,
    target: DeployTarget,
    identity: Pinned,
    *,
    params: Params,
    image: str | None,
    record_path: Path,
) -> Release:
    """Release to the target and smoke-test it; on failure restore the previous release.

    Args:
        repo: the verified checkout (its test split gives the smoke test's example).
        target: where the service runs.
        identity: the commit and hashes being released.
        params: the project's params (contract, serve).
        image: the container image, for the targets that run one.
        record_path: the deployment record to append to.

    Raises:
        DeployError: with the reason, after the previous release was restored.
    """
    example = example_request(repo, params)
    previous = target.current()

    def log(outcome: str, reason: str = "") -> None:
        record.append(
            record_path,
            record.DeploymentEntry(
                commit=identity.commit,
                model_md5=identity.model_md5,
                data_md5=identity.data_md5,
                bento_tag=identity.bento_tag,
                target=target.name,
                outcome=outcome,
                reason=reason,
            ),
        )

    def log_restored(release: Release) -> None:
        # The previous release's hashes are not known here; its commit identifies it.
        record.append(
            record_path,
            record.DeploymentEntry(
                commit=release.commit,
                model_md5="",
                data_md5="",
                bento_tag=release.bento_tag,
                target=target.name,
                outcome=record.RESTORED,
                reason=f"restored after {identity.commit[:12]} failed",
            ),
        )

    def smoke(endpoint: str) -> list[str]:
        return smoke_test(
            endpoint,
            expected_model_md5=identity.model_md5,
            example=example,
            api_key=first_api_key(params),
        )

    def restore_previous(problems: list[str]) -> DeployError:
        target.restore(previous)
        reason = "; ".join(problems)
        log(record.ROLLED_BACK, reason)
        if previous is not None:
            log_restored(previous)
        kept = previous.bento_tag if previous else "nothing (there was no previous release)"
        return DeployError(f"smoke test failed ({reason}); {kept} is serving")

    # The target smoke-tests the new version on its own before any traffic reaches it; the
    # check through the public endpoint afterwards proves traffic now reaches that version.
    try:
        released = target.release(
            identity.commit, identity.bento_tag, image, check=Check(identity.model_md5, smoke)
        )
    except SmokeTestFailed as failed:
        raise restore_previous(failed.problems) from None
    except DeployError as error:
        target.restore(previous)
        log(record.FAILED, str(error))
        raise
    problems = smoke(released.endpoint)
    if problems:
        raise restore_previous(problems)
    target.retire(previous)
    log(record.RELEASED)
    logger.info("released %s on %s at %s", identity.bento_tag, target.name, released.endpoint)
    return released
