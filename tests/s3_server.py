"""A real AWS API on 127.0.0.1 for the tests: moto's server, started and stopped by the test.

moto's server answers the S3, CloudFormation, IAM and KMS APIs as boto3, s3fs and `dvc-s3`
call them, so the S3 code paths run for real (requests, signatures, multipart uploads) without
an AWS account. It is a stand-in only for AWS itself. `S3Server.env()` gives the variables a
subprocess needs to reach it (credentials, region and the endpoint); `S3Server.client(name)`
a boto3 client. Every server is a separate process, stopped with its whole process tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlgitops.deploy.local import free_port, stop_process_group
from mlgitops.infra.stack import TEMPLATE_PATH

STARTUP_SECONDS = 60
TEMPLATE = Path(__file__).parents[1] / TEMPLATE_PATH
# The repository the test stack's roles trust.
STACK, OWNER, REPOSITORY = "mlgitops-test", "acme-ml", "churn-model"
REGION = "us-east-1"
# moto accepts any credentials; these say what they are wherever they show up.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret-key",
}


@dataclass(frozen=True)
class S3Server:
    """A running moto server: its endpoint and the environment that points clients at it."""

    endpoint_url: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """Variables for a boto3/s3fs/dvc subprocess: credentials, region, the endpoint."""
        return {
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # boto3 (and so s3fs and dvc-s3) reads the endpoint from here since botocore 1.31.
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, service: str) -> Any:
        """A boto3 client of `service` talking to this server."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


def _wait_ready(server: S3Server, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"moto_server exited at start:\n{log.read_text()[-2000:]}")
        try:
            # moto's own dashboard API answers once the server can take requests.
            if httpx.get(f"{server.endpoint_url}/moto-api/data.json", timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_process_group(server.process.pid)
    raise RuntimeError(f"moto_server did not answer within {STARTUP_SECONDS} s")


@contextmanager
def running_s3_server(log_dir: Path) -> Iterator[S3Server]:
    """Start moto's server on a free 127.0.0.1 port; stop it (and its children) afterwards."""
    port = free_port()
    log = log_dir / f"moto-{port}.log"
    program = Path(sys.executable).parent / "moto_server"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(program), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS},
            start_new_session=True,
        )
    server = S3Server(endpoint_url=f"http://127.0.0.1:{port}", process=process)
    try:
        _wait_ready(server, log)
        yield server
    finally:
        stop_process_group(process.pid)


def deploy_stack(server: S3Server, *, retention_days: int) -> dict[str, str]:
    """Create the project's stack (deploy/aws/mlgitops.yaml) in `server`; its outputs."""
    cloudformation = server.client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "GitHubOwner", "ParameterValue": OWNER},
            {"ParameterKey": "GitHubRepository", "ParameterValue": REPOSITORY},
            {"ParameterKey": "CreateOidcProvider", "ParameterValue": "true"},
            {"ParameterKey": "LogRetentionDays", "ParameterValue": str(retention_days)},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    (described,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"the test stack is {described['StackStatus']}")
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
