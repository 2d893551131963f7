"""What every deploy target offers: release a bento, say what serves now, undo a release."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DeployError(RuntimeError):
    """A deploy step failed; the message says what to do about it."""


@dataclass(frozen=True)
class Release:
    """One version of the service on one target."""

    target: str  # "local" | "kubernetes" | "bentocloud"
    commit: str  # git commit SHA the bento was built from
    bento_tag: str  # e.g. "mlgitops:<commit>"
    image: str | None  # container image reference, for kubernetes
    endpoint: str  # base URL the smoke test calls


class DeployTarget(Protocol):
    """A place the service runs. Each method raises DeployError with what to do."""

    name: str

    def check_configured(self) -> None:
        """Fail before touching anything when the target is not set up."""

    def current(self) -> Release | None:
        """What is serving now, if known."""

    def release(self, commit: str, bento_tag: str, image: str | None) -> Release:
        """Roll out the bento and wait until it is ready."""

    def restore(self, previous: Release | None) -> None:
        """Undo a failed release, leaving `previous` serving."""
