"""A Dask scheduler and workers as separate processes on 127.0.0.1, stopped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlgitops.deploy.local import free_port, stop_process_group

STARTUP_SECONDS = 60
BIN = Path(sys.executable).parent


@contextmanager
def dask_cluster(workers: int, *, log_dir: Path, pythonpath: Path) -> Iterator[str]:
    """Start `dask scheduler` and `workers` x `dask worker` (one thread each); yield the address."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), *sys.path])}
    port = address.rsplit(":", 1)[1]
    commands = [
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
        *(
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--no-nanny",
                "--local-directory",
                str(log_dir / f"worker-{i}"),
            ]
            for i in range(workers)
        ),
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for number, command in enumerate(commands):
            log = (log_dir / f"process-{number}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=STARTUP_SECONDS)
        yield address
    finally:
        for process in reversed(processes):
            stop_process_group(process.pid)
        deadline = time.monotonic() + 10
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)
