"""API keys never reach a log: the server's, the prediction log, the deploy state's."""

from __future__ import annotations

import httpx
import pytest

from live_server import build_bento
from mlgitops.deploy.local import LocalTarget, free_port

pytestmark = pytest.mark.slow

INVALID_KEYS = ("invalid-key-d41d8cd98f00b204", "reliability-key-3f9a1", "Bearer-lookalike-51c2")


def requests_with_keys(url: str, keys: tuple[str, ...], example: dict) -> list[int]:
    """Every route, each key in both header forms; the statuses answered."""
    statuses = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for key in keys:
            for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
                for method, path, body in (
                    ("POST", "/predict", {"records": [example]}),
                    ("POST", "/predict", {"records": [{**example, "made-up": 1}]}),
                    ("POST", "/explain", {"records": [example]}),
                    ("GET", "/metadata", None),
                    ("GET", "/docs.json", None),
                    ("GET", "/no-such-path", None),
                    ("GET", "/readyz", None),
                ):
                    response = client.request(method, path, json=body, headers=headers)
                    statuses.append(response.status_code)
    return statuses


def test_api_keys_never_appear_in_any_log(home, trained_project):
    # Given a release of the built bento through the local deploy target (proxy and server,
    # logs under its state directory, prediction log in the home), when every route gets
    # requests carrying valid and invalid keys, then no file written anywhere in the home
    # contains any of the keys.
    import yaml

    example = yaml.safe_load((home.model_dir() / "model.yaml").read_text())["metadata"]["example"]
    target = LocalTarget(
        state_dir=home.root / "deploy", port=free_port(), ready_timeout=90, env=home.env()
    )
    tag = build_bento(home)
    try:
        target.check_configured()
        release = target.release("0" * 40, tag, None)
        statuses = requests_with_keys(release.endpoint, home.keys + INVALID_KEYS, example)
    finally:
        target.stop()
    assert 200 in statuses, f"no valid key was accepted: {statuses}"
    assert 401 in statuses, f"no invalid key was refused: {statuses}"
    # Everything written under the home but the model and bento store itself.
    store = home.bentoml_home
    files = [p for p in home.root.rglob("*") if p.is_file() and not p.is_relative_to(store)]
    names = [str(p.relative_to(home.root)) for p in files]
    assert any(p.name.startswith("server-") for p in files), f"no server log in {names}"
    assert any(p.name == "proxy.log" for p in files), f"no proxy log in {names}"
    assert any("mlgitops_predictions" in p.parts for p in files), f"no prediction log in {names}"
    hits = [
        f"{path.relative_to(home.root)}: {key}"
        for path in files
        for key in home.keys + INVALID_KEYS
        if key.encode() in path.read_bytes()
    ]
    assert not hits, f"API keys found in logs: {hits}"
