"""Getting the raw data: from the DVC remote when reachable, else from the registry package."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from mlgitops import layout
from mlgitops.layout import DATA_POINTER, RAW_DATA_PATH
from mlgitops.tools import tool

logger = logging.getLogger(__name__)

# What `dvc add data` records for the example table as the palmerpenguins package writes it
# (tests/data checks it). Only a pointer with this hash may be satisfied from the package.
EXAMPLE_DATA_MD5 = "d69156d12488302b75f83df59840ce28.dir"


class DataError(RuntimeError):
    """The raw data could not be obtained, or is not the version `data.dvc` records."""


def write_default_dataset(path: Path | str = RAW_DATA_PATH) -> Path:
    """Write the raw Palmer penguins table, exactly as the `palmerpenguins` package ships it."""
    from palmerpenguins import load_penguins_raw

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    load_penguins_raw().to_csv(path, index=False, lineterminator="\n")
    return path


def _dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("dvc"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def pointer_is_satisfied(repo: Path, pointer: Path | str = DATA_POINTER) -> bool:
    """Whether the workspace data hashes to exactly what the `.dvc` pointer records.

    `dvc data status` compares the workspace with the pointer whether or not the data is in
    the local cache yet (`dvc status` only says "not in cache" then, match or not).
    """
    result = _dvc("data", "status", "--json", cwd=repo)
    if result.returncode != 0:
        raise DataError(f"`dvc data status` failed: {result.stderr.strip()}")
    uncommitted = json.loads(result.stdout or "{}").get("uncommitted", {})
    tracked = Path(pointer).with_suffix("").as_posix()
    return not any(
        path == f"{tracked}/" or path.startswith(f"{tracked}/") or path == tracked
        for paths in uncommitted.values()
        for path in paths
    )


def pointer_md5(repo: Path, pointer: Path | str = DATA_POINTER) -> str | None:
    """The md5 the `.dvc` pointer records for its output, or None when it records none."""
    try:
        return layout.data_md5(layout.read_yaml(repo / pointer))
    except (OSError, layout.LayoutError):
        return None


def fetch_raw_data(repo: Path | str = Path(".")) -> str:
    """Make the raw data match `data.dvc`: `dvc pull` first, the registry package second.

    Returns:
        Where the data came from: "workspace", "remote" or "package".

    Raises:
        DataError: when neither source yields the version `data.dvc` records.
    """
    repo = Path(repo)
    if (repo / RAW_DATA_PATH).exists() and pointer_is_satisfied(repo):
        logger.info("%s already matches %s", RAW_DATA_PATH, DATA_POINTER)
        return "workspace"
    pulled = _dvc("pull", DATA_POINTER, cwd=repo)
    if pulled.returncode == 0 and pointer_is_satisfied(repo):
        logger.info("pulled %s from the DVC remote", RAW_DATA_PATH)
        return "remote"
    reason = (pulled.stderr or pulled.stdout).strip().splitlines()
    recorded = pointer_md5(repo)
    if recorded != EXAMPLE_DATA_MD5:
        # An adopted project's data exists only where it was added: never write the example
        # table over it, say where the data has to come from instead.
        raise DataError(
            f"{DATA_POINTER} records your own data (md5 {recorded}), and no reachable DVC "
            f"remote holds it (`dvc pull`: "
            f"{reason[-1] if reason else f'exit code {pulled.returncode}'}). "
            "In the clone where you added it, configure a remote and push it: "
            "`dvc remote add -d storage <url>` (see README, 'Where the data lives'), "
            "`git commit .dvc/config`, `dvc push`; then run `make data` here again."
        )
    logger.warning(
        "dvc pull did not provide the data (%s); writing it from the palmerpenguins package",
        reason[-1] if reason else f"exit code {pulled.returncode}",
    )
    write_default_dataset(repo / RAW_DATA_PATH)
    if not pointer_is_satisfied(repo):
        raise DataError(
            f"{RAW_DATA_PATH} written from the palmerpenguins package does not match the hash in "
            f"{DATA_POINTER}; the data was changed since. Configure a DVC remote that holds it "
            "(see README, 'Where the data lives') and run `make data` again."
        )
    # Put the file in the DVC cache too, so `dvc push` can upload it.
    committed = _dvc("commit", "--force", DATA_POINTER, cwd=repo)
    if committed.returncode != 0:
        raise DataError(f"`dvc commit {DATA_POINTER}` failed: {committed.stderr.strip()}")
    logger.info(
        "wrote %s from the palmerpenguins package; it matches %s", RAW_DATA_PATH, DATA_POINTER
    )
    return "package"
