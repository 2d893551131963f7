"""deploy/prometheus/: promtool checks, and a real Prometheus scraping a real BentoML server."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import PROJECT_ROOT
from live_server import packaged_home, start_server, wait_ready
from mlgitops.contract.check import feature_frame, load_valid_table
from mlgitops.deploy.local import free_port, stop_process_group
from mlgitops.layout import locked_md5
from mlgitops.monitor.traffic import to_records
from mlgitops.params import load_params

CONFIG_DIR = PROJECT_ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NO_PROMTOOL = "promtool is not installed (Debian: apt-get install prometheus)"
API_KEY = "monitor-test-key"
# Metrics that only the monitor job (drift.prom) or Prometheus itself provides.
NOT_FROM_THE_SERVICE = {"mlgitops_drift_share", "mlgitops_drift_detected", "up"}


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and the workers it started (its own process group)."""
    stop_process_group(process.pid, grace=20)
    process.wait(timeout=10)


def wait_for(check, *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready in {timeout} s:\n{log.read_text()[-3000:]}")


def rule_metric_names() -> set[str]:
    rules = yaml.safe_load((CONFIG_DIR / "alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    names = set(re.findall(r"\b((?:mlgitops|bentoml)_[a-z_]+)", exprs))
    return {re.sub(r"_(bucket|total)$", "", n) for n in names} - NOT_FROM_THE_SERVICE


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_scrape_config():
    # Given deploy/prometheus/prometheus.yml, when promtool checks it, then it is valid and
    # finds the alert rules it names.
    result = subprocess.run(
        [PROMTOOL, "check", "config", "prometheus.yml"],
        cwd=CONFIG_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"promtool check config:\n{result.stdout}{result.stderr}"
    assert "1 rule files found" in result.stdout, f"rule file not found: {result.stdout}"


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_alert_rules():
    # Given deploy/prometheus/alerts.yml, then promtool accepts it and the five alerts the
    # issue asks for are there.
    result = subprocess.run(
        [PROMTOOL, "check", "rules", "alerts.yml"],
        cwd=CONFIG_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"promtool check rules:\n{result.stdout}{result.stderr}"
    names = {
        r["alert"]
        for g in yaml.safe_load((CONFIG_DIR / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    wanted = {
        "MlgitopsHighErrorRate",
        "MlgitopsHighP99Latency",
        "MlgitopsDrift",
        "MlgitopsNoTraffic",
        "MlgitopsModelChanged",
    }
    assert wanted <= names, f"missing alerts {wanted - names}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, trained_project: Path) -> Iterator[str]:
    """The trained model packaged into a private BentoML home and served on 127.0.0.1."""
    home = packaged_home(tmp_path_factory.mktemp("served"), trained_project, keys=(API_KEY,))
    server = start_server(home)
    try:
        wait_ready(server, timeout=120)
        yield server.url
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian package)")
def test_prometheus_scrapes_the_service_and_returns_its_model(served, trained_project, tmp_path):
    # Given a real BentoML server that served a prediction and a real Prometheus scraping it
    # with the project's rules, when Prometheus' HTTP API is queried, then it returns the
    # model_info series with the md5 dvc.lock records, and every metric the rules name exists.
    # One held-out row of whatever table the project holds, typed by its contract.
    contract = load_params(trained_project / "params.yaml").contract
    test = load_valid_table(trained_project / "artifacts" / "test.csv", contract)
    example = to_records(feature_frame(test.head(1), contract))[0]
    answer = httpx.post(
        f"{served}/predict",
        json={"records": [example]},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    exposed = httpx.get(f"{served}/metrics", timeout=10).text
    missing = {name for name in rule_metric_names() if name not in exposed}
    assert not missing, f"alert rules name metrics the service does not expose: {missing}"

    config = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(CONFIG_DIR / "alerts.yml")]
    config["scrape_configs"] = [
        {
            **config["scrape_configs"][0],
            "static_configs": [{"targets": [served.removeprefix("http://")]}],
        }
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        found: list[dict] = []

        def model_info_scraped() -> bool:
            query = httpx.get(f"{api}/query", params={"query": "mlgitops_model_info"}, timeout=5)
            found[:] = query.json()["data"]["result"] if query.is_success else []
            return bool(found)

        wait_for(model_info_scraped, timeout=60, what="a scrape of mlgitops_model_info", log=log)
        lock = yaml.safe_load((PROJECT_ROOT / "dvc.lock").read_text())
        labels = found[0]["metric"]
        assert labels["model_md5"] == locked_md5(lock, "artifacts/model.joblib"), f"{labels}"
        assert found[0]["value"][1] == "1", f"model_info value {found[0]['value']}"
        rules = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) >= 5, "Prometheus did not load the rules"
    finally:
        stop(process)
