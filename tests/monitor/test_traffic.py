"""`mlgitops simulate-traffic`: held-out rows, optionally shifted, sent to /predict on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from mlgitops.cli import main
from mlgitops.monitor.traffic import sample_records, shift_rows


@pytest.fixture
def stub() -> Iterator[tuple[str, list[dict]]]:
    """A loopback /predict that records each body and answers 200 (400 on a missing key)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "auth": self.headers["Authorization"], **body})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def test_shift_moves_numbers_within_the_contract(held_out, params):
    # Given held-out rows, when shifted by 1 std, then every numeric feature's mean rises and
    # no value leaves the contract's range; categories are untouched.
    shifted = shift_rows(held_out, params.contract, 1.0)
    for name in params.contract.numeric_features:
        before, after = pd.to_numeric(held_out[name]), shifted[name]
        spec = params.contract.columns[name]
        assert after.mean() > before.mean(), f"{name} did not move"
        assert after.max() <= spec.max, f"{name} rose above its max"
        assert after.min() >= spec.min, f"{name} fell below its min"
    for name in params.contract.categorical_features:
        assert shifted[name].equals(held_out[name]), f"category {name} changed"


def test_samples_are_seeded_and_hold_only_features(held_out, params, seed):
    # Given a seed, then two draws are equal, and a record never carries a non-feature.
    first = sample_records(held_out, params.contract, count=20, shift=0.0, seed=seed)
    again = sample_records(held_out, params.contract, count=20, shift=0.0, seed=seed)
    assert first == again, "same seed, different records"
    extra = {k for r in first for k in r} - set(params.contract.features)
    assert not extra, f"records carry non-features {extra}"


def test_simulate_traffic_sends_bounded_batches(stub, artifacts, monkeypatch, capsys):
    # Given a loopback service, when 25 records are simulated in batches of 10, then 3
    # requests reach /predict with the API key and every record, and the command exits 0.
    url, received = stub
    monkeypatch.setenv("MLGITOPS_API_KEY", "k")
    code = main(
        [
            "simulate-traffic",
            "--url",
            url,
            "--shift",
            "0.5",
            "--count",
            "25",
            "--batch-size",
            "10",
            "--data",
            str(artifacts / "test.csv"),
            "--no-progress",
        ]
    )
    assert code == 0, f"exit {code}: {capsys.readouterr()}"
    assert [len(r["records"]) for r in received] == [10, 10, 5], "wrong batches"
    assert {r["path"] for r in received} == {"/predict"}, "wrong path"
    assert {r["auth"] for r in received} == {"Bearer k"}, "API key not sent"
    assert "sent 25 records" in capsys.readouterr().out, "no summary printed"


def test_simulate_traffic_stops_at_the_time_bound(stub, artifacts):
    # Given a zero time budget, then nothing is sent and the command says so by its output.
    url, received = stub
    code = main(
        [
            "simulate-traffic",
            "--url",
            url,
            "--count",
            "50",
            "--max-seconds",
            "0",
            "--data",
            str(artifacts / "test.csv"),
            "--no-progress",
        ]
    )
    assert received == [], f"{len(received)} requests sent past the time bound"
    assert code == 1, "an incomplete simulation must not exit 0"
