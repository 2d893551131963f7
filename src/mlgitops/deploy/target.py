"""What every deploy target offers: a release checked before traffic, what serves, an undo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class DeployError(RuntimeError):
    """A deploy step failed; the message says what to do about it."""


class SmokeTestFailed(DeployError):
    """The new version failed its smoke test before it took traffic."""

    def __init__(self, problems: list[str]) -> None:
        """Keep the smoke test's problems; the message joins them."""
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Check:
    """The smoke test a target runs on a new version before it takes traffic."""

    model_md5: str  # the model the new version must serve: the md5 dvc.lock pins
    run: Callable[[str], list[str]]  # given a URL reaching only the new version: its problems


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

    def release(
        self, commit: str, bento_tag: str, image: str | None, *, check: Check | None = None
    ) -> Release:
        """Roll out the bento and give it traffic only once `check` passed on it alone.

        The target waits until the new version is ready and runs `check` on it before any
        traffic reaches it.

        Raises:
            SmokeTestFailed: with `check`'s problems.
        """

    def restore(self, previous: Release | None) -> None:
        """Undo a failed release, leaving `previous` serving."""

    def retire(self, previous: Release | None) -> None:
        """After a healthy release, let go of `previous` (by default there is nothing to do)."""
        return None

    def stop(self) -> None:
        """Stop every release of this target; only a target that runs servers here can.

        Raises:
            DeployError: by default, since a remote target is stopped where it runs.
        """
        raise DeployError(f"`mlgitops deploy stop` is only for the local target, not {self.name}")
