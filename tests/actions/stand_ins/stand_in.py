"""Stand-ins, written by us, for the actions the workflows pin (act runs them in host mode).

Nothing here is the real action: each does what the real one documents, on this machine and
without the network, for the inputs our workflows pass. The scenario harness
(tests/actions/harness.py) maps every pinned `uses:` to these folders with act's
`--local-repository`, and gives them their places through MLGITOPS_ACT_* variables:
the bare origin repository, the artifact store, the prebuilt virtual environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def output(name: str, value: str) -> None:
    with open(env("GITHUB_OUTPUT"), "a", encoding="utf-8") as handle:
        handle.write(f"{name}={value}\n")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def checkout() -> None:
    """actions/checkout: a fresh clone of the workflow's ref (or `ref`) from the local bare
    origin; `refs/pull/N/merge` and `refs/pull/N/head` are refs of that origin too (the
    harness writes them, as GitHub does). fetch-depth 0 = all history, else a shallow fetch."""
    workspace = Path(env("GITHUB_WORKSPACE"))
    origin = env("MLGITOPS_ACT_ORIGIN")
    # As actions/checkout: the given ref, else the event's: a PR's merge ref, else the commit.
    event_ref = env("GITHUB_REF")
    ref = env("INPUT_REF") or (
        event_ref if event_ref.startswith("refs/pull/") else env("GITHUB_SHA")
    )
    for child in workspace.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    git("init", "-q", "-b", "mlgitops-checkout", ".", cwd=workspace)
    git("remote", "add", "origin", origin, cwd=workspace)
    # Always the whole history (a local origin, so it costs nothing): the workflows that
    # need history ask for fetch-depth 0, and the others never look.
    subprocess.run(
        ["git", "fetch", "-q", origin, "+refs/heads/*:refs/remotes/origin/*"],
        cwd=workspace,
        check=True,
    )
    if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
        git("checkout", "-q", "--detach", ref, cwd=workspace)
    else:
        subprocess.run(["git", "fetch", "-q", origin, ref], cwd=workspace, check=True)
        git("checkout", "-q", "--detach", "FETCH_HEAD", cwd=workspace)
    if ref.startswith("refs/heads/") or (not ref.startswith("refs/") and len(ref) != 40):
        git("checkout", "-q", "-B", ref.removeprefix("refs/heads/"), cwd=workspace)
    remote = env("MLGITOPS_ACT_DVC_REMOTE")
    if remote:
        subprocess.run(
            ["dvc", "remote", "modify", "--local", "local", "url", remote],
            cwd=workspace,
            check=True,
            env={**os.environ, "PATH": f"{env('MLGITOPS_ACT_BASE_VENV')}/bin:{env('PATH')}"},
        )
    output("commit", git("rev-parse", "HEAD", cwd=workspace))
    output("ref", ref)


def setup_python() -> None:
    """actions/setup-python: the machine's Python 3.11. With MLGITOPS_ACT_BASE_VENV set, it
    also lays out the workspace's .venv over that prebuilt environment (the same pinned
    lock), with the checkout's own src/ first on the path, so `make venv` finds it current
    instead of installing the lock again in every job."""
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    base = env("MLGITOPS_ACT_BASE_VENV")
    if not base:
        return
    workspace = Path(env("GITHUB_WORKSPACE"))
    venv = workspace / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    base_site = Path(base) / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    site = venv / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    # Path lines come first on sys.path, ahead of the base's editable finder for mlgitops.
    (site / "00-mlgitops-checkout.pth").write_text(f"{workspace / 'src'}\n")
    (site / "01-mlgitops-base.pth").write_text(
        f"import site; site.addsitedir({str(base_site)!r})\n"
    )
    for script in (Path(base) / "bin").iterdir():
        if script.name.startswith(("python", "activate", "pip")) or not script.is_file():
            continue
        text = script.read_bytes()
        if not text.startswith(b"#!"):
            continue
        first, _, rest = text.partition(b"\n")
        target = venv / "bin" / script.name
        if b"python" in first:
            target.write_bytes(f"#!{venv / 'bin' / 'python'}".encode() + b"\n" + rest)
        else:
            target.write_bytes(text)
        target.chmod(0o755)
    (venv / ".installed").touch()
    # checkov's own environment (the Makefile's .tools/checkov), built once by `make test`:
    # the pip cache of setup-python spares a runner the same download.
    checkov = env("MLGITOPS_ACT_BASE_CHECKOV")
    if checkov:
        (workspace / ".tools").mkdir(exist_ok=True)
        (workspace / ".tools" / "checkov").symlink_to(checkov, target_is_directory=True)


def artifact_dir(run_id: str, name: str) -> Path:
    return Path(env("MLGITOPS_ACT_ARTIFACTS")) / run_id / name


def upload_artifact() -> None:
    """actions/upload-artifact: the files of `path` (one or more lines, relative to the
    workspace) below their least common ancestor, stored for this run id and name; as in
    v4, `if-no-files-found` decides between warn and error, and a zip is kept as the API
    serves it."""
    workspace = Path(env("GITHUB_WORKSPACE"))
    paths = [workspace / p.strip() for p in env("INPUT_PATH").splitlines() if p.strip()]
    existing = [p for p in paths if p.exists()]
    if not existing:
        message = f"No files were found with the provided path: {env('INPUT_PATH')!r}"
        if env("INPUT_IF_NO_FILES_FOUND") == "error":
            print(f"::error::{message}")
            sys.exit(1)
        print(f"::warning::{message}. No artifacts will be uploaded.")
        return
    ancestor = Path(os.path.commonpath([str(p if p.is_dir() else p.parent) for p in existing]))
    if len(existing) == 1 and existing[0].is_dir():
        ancestor = existing[0]
    store = artifact_dir(env("GITHUB_RUN_ID"), env("INPUT_NAME", "artifact"))
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    with zipfile.ZipFile(store.with_suffix(".zip"), "w") as archive:
        for path in existing:
            files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
            for file in files:
                relative = file.relative_to(ancestor) if file != ancestor else Path(file.name)
                (store / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, store / relative)
                archive.write(file, relative.as_posix())
    print(f"uploaded {env('INPUT_NAME')} for run {env('GITHUB_RUN_ID')}")


def download_artifact() -> None:
    """actions/download-artifact: `name` of run `run-id` (default: this run) into `path`."""
    run_id = env("INPUT_RUN_ID") or env("GITHUB_RUN_ID")
    store = artifact_dir(run_id, env("INPUT_NAME"))
    if not store.is_dir():
        print(
            "::error::Unable to download artifact(s): Artifact not found for name: "
            + env("INPUT_NAME")
        )
        sys.exit(1)
    destination = Path(env("GITHUB_WORKSPACE")) / (env("INPUT_PATH") or ".")
    shutil.copytree(store, destination, dirs_exist_ok=True, symlinks=True)
    print(f"downloaded {env('INPUT_NAME')} of run {run_id} into {destination}")


def setup_cml() -> None:
    """iterative/setup-cml: puts the `cml` stand-in (tests/actions/stand_ins/bin) on PATH."""
    with open(env("GITHUB_PATH"), "a", encoding="utf-8") as handle:
        handle.write(str(Path(__file__).parent / "bin") + "\n")
    print(f"cml stand-in for version {env('INPUT_VERSION')}")


def no_op() -> None:
    """aws-actions/configure-aws-credentials, docker/login-action: nothing to log in to here."""
    print(json.dumps({"stand-in": env("MLGITOPS_ACT_ACTION"), "did": "nothing"}))


if __name__ == "__main__":
    {
        "checkout": checkout,
        "setup-python": setup_python,
        "upload-artifact": upload_artifact,
        "download-artifact": download_artifact,
        "setup-cml": setup_cml,
        "no-op": no_op,
    }[sys.argv[1]]()
