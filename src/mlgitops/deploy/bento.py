"""The bento and its image: build it from the pinned model, containerize and push it."""

from __future__ import annotations

import logging
from pathlib import Path

from mlgitops.deploy.kubernetes import image_for_commit
from mlgitops.deploy.target import DeployError
from mlgitops.deploy.verify import Pinned, run

logger = logging.getLogger(__name__)


def build(repo: Path, identity: Pinned) -> str:
    """Package the model and build the bento, versioned by the commit (idempotent).

    The bento pins the exact model it was built with (serving/bento.py), so reusing the
    bento of a commit serves that commit's model whatever was packaged since.
    """
    from mlgitops.serving.bento import BentoBuildError, build_bento
    from mlgitops.serving.package import PackageError, package

    existing = run(["bentoml", "get", identity.bento_tag, "-o", "json"], repo)
    if existing.returncode == 0:
        logger.info("bento %s already built; reusing it", identity.bento_tag)
        return identity.bento_tag
    try:
        model = package(repo)
        build_bento(repo, model_tag=str(model.tag), version=identity.commit)
    except (BentoBuildError, PackageError) as error:
        raise DeployError(str(error)) from None
    logger.info("built bento %s", identity.bento_tag)
    return identity.bento_tag


def containerize(repo: Path, identity: Pinned, image: str | None) -> str:
    """Build the bento's container image, tagged with the commit, and push it.

    Raises:
        DeployError: without an image name, with a tag other than the commit, or when the
            build or the push fails.
    """
    if not image:
        raise DeployError("--image is required: e.g. ghcr.io/<owner>/<repo>:<commit sha>")
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag != identity.commit:
        raise DeployError(
            f"the image tag must be the commit {identity.commit} (never only 'latest'), got "
            f"{image!r}"
        )
    # The Kubernetes target releases exactly this reference (lowercased, as registries want).
    image = str(image_for_commit(image, identity.commit))
    for command in (
        ["bentoml", "containerize", identity.bento_tag, "--image-tag", image],
        ["docker", "push", image],
    ):
        result = run(command, repo)
        if result.returncode != 0:
            raise DeployError(
                f"`{' '.join(command[:2])}` failed:\n"
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
    logger.info("pushed %s", image)
    return image
