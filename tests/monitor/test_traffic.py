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


def _typed_table(contract, *, rows: int, seed: int) -> pd.DataFrame:
    from mlgitops.contract.check import check_table
    from tables import table_from_contract

    typed, report = check_table(table_from_contract(contract, rows=rows, seed=seed), contract)
    assert report["valid"], report["failures"]
    return typed


INT_CONTRACT = {
    "task": "classification",
    "columns": {
        "count": {"dtype": "int", "min": 0, "max": 40, "nullable": True},
        "level": {"dtype": "int", "min": -3, "max": 3},
        "size": {"dtype": "float", "min": 0, "max": 1},
        "on": {"dtype": "bool"},
        "label": {"dtype": "int", "role": "target", "min": 0, "max": 2},
    },
}


@pytest.mark.parametrize("shift", [0.0, 0.7, -2.0])
def test_integer_features_are_sent_as_integers(shift, seed):
    # Given a contract with int features, when records are sampled and shifted, then every
    # int feature is a JSON integer (the service types them strictly: 3.0 is refused) inside
    # its range, and every record is JSON.
    from mlgitops.contract import ContractParams

    contract = ContractParams.model_validate(INT_CONTRACT)
    typed = _typed_table(contract, rows=60, seed=seed)
    records = sample_records(typed, contract, count=40, shift=shift, seed=seed)
    for record in records:
        json.dumps(record)
        for name in ("count", "level"):
            if name in record:
                value, spec = record[name], contract.columns[name]
                assert type(value) is int, f"{name} sent as {type(value).__name__} {value!r}"
                assert spec.min <= value <= spec.max, f"{name}={value} out of range"
        assert type(record["on"]) is bool, f"bool sent as {type(record['on']).__name__}"


def test_a_small_split_is_sent_once_per_row_not_resampled(seed):
    # Given 36 held-out rows and 200 records asked for, when sampled, then each row is sent
    # exactly once: repeating rows would make unshifted traffic look drifted.
    from mlgitops.contract import ContractParams

    contract = ContractParams.model_validate(INT_CONTRACT)
    typed = _typed_table(contract, rows=36, seed=seed)
    records = sample_records(typed, contract, count=200, shift=0.0, seed=seed)
    assert len(records) == 36, f"{len(records)} records from 36 rows"
    keys = {json.dumps(r, sort_keys=True) for r in records}
    rows = {
        json.dumps(r, sort_keys=True)
        for r in sample_records(typed, contract, count=36, shift=0.0, seed=seed + 1)
    }
    assert keys == rows, "the records are not the split's rows, each once"
