"""The `deploy` section of `params.yaml`: one subsection per deploy target."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mlgitops.sections import Section


class LocalDeployParams(Section):
    """The `local` target: `bentoml serve` processes behind a proxy on 127.0.0.1."""

    port: Annotated[int, Field(ge=1, le=65535)] = 3000
    ready_timeout_s: Annotated[float, Field(gt=0)] = 180.0


class KubernetesDeployParams(Section):
    """The `kubernetes` target: the kustomize base in `manifests`, rolled out with kubectl."""

    namespace: str | None = None
    endpoint: str | None = None  # the service's base URL, for the smoke test
    deployment: str = "mlgitops"
    manifests: str = "deploy/k8s"
    context: str | None = None
    rollout_timeout_s: Annotated[int, Field(ge=10)] = 300
    api_keys_secret: str | None = "mlgitops-api-keys"


class BentoCloudDeployParams(Section):
    """The `bentocloud` target: `bentoml deploy` to a BentoCloud deployment."""

    deployment: str = "mlgitops"
    cluster: str | None = None
    scaling_min: Annotated[int, Field(ge=0)] | None = None
    scaling_max: Annotated[int, Field(ge=1)] | None = None
    instance_type: str | None = None
    strategy: Literal[
        "RollingUpdate", "Recreate", "RampedSlowRollout", "BestEffortControlledRollout"
    ] = "RollingUpdate"
    secrets: tuple[str, ...] = ("mlgitops-api-keys",)
    timeout_s: Annotated[int, Field(ge=10)] = 1800


class DeployParams(Section):
    """Where `mlgitops deploy` ships the service; one subsection per target."""

    local: LocalDeployParams = LocalDeployParams()
    kubernetes: KubernetesDeployParams = KubernetesDeployParams()
    bentocloud: BentoCloudDeployParams = BentoCloudDeployParams()
