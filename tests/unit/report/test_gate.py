"""The gate: each rule's direction, the interval-based rule, missing baselines, modes."""

from __future__ import annotations

import pytest

from mlgitops.report.gate import evaluate_gate
from mlgitops.report.settings import GatesParams

GATES = GatesParams.model_validate(
    {
        "floors": {"balanced_accuracy_score": 0.8, "log_loss": 0.6},
        "max_regression": {
            "log_loss": {"relative": 0.2},
            "balanced_accuracy_score": {"absolute": 0.05},
        },
        "non_inferiority": {"balanced_accuracy_score": {"margin": 0.01}},
    }
)
BASE = {"balanced_accuracy_score": 0.90, "log_loss": 0.30}


def metrics(score: float, low: float, high: float, loss: float = 0.30) -> dict:
    return {
        "balanced_accuracy_score": score,
        "log_loss": loss,
        "ci": {"balanced_accuracy_score": {"low": low, "high": high, "confidence": 0.95}},
    }


def failed(verdict: dict) -> list[tuple[str, str]]:
    return [(r["rule"], r["metric"]) for r in verdict["rules"] if r["status"] == "failed"]


def test_noise_inside_the_interval_passes():
    # Given a PR a little worse than base, whose interval still reaches the base value,
    # then the non-inferiority rule passes: noise alone does not fail a PR.
    verdict = evaluate_gate(GATES, metrics(0.88, 0.83, 0.93), {"base": BASE}, None)
    assert verdict["passed"], failed(verdict)


def test_injected_regression_fails_with_both_values():
    verdict = evaluate_gate(GATES, metrics(0.70, 0.62, 0.78, loss=0.45), {"base": BASE}, None)
    assert not verdict["passed"]
    assert verdict["blocking"]
    assert ("non_inferiority", "balanced_accuracy_score") in failed(verdict)
    assert ("floor", "balanced_accuracy_score") in failed(verdict)
    assert ("max_regression", "log_loss") in failed(verdict), "loss rose by 50% > 20%"
    details = " ".join(r["detail"] for r in verdict["rules"] if r["status"] == "failed")
    assert "0.7000" in details, "the message shows the PR's value"
    assert "0.9000" in details, "the message shows the base value"


def test_improvement_passes():
    verdict = evaluate_gate(GATES, metrics(0.97, 0.94, 0.99, loss=0.10), {"base": BASE}, None)
    assert verdict["passed"], failed(verdict)


def test_direction_comes_from_the_name():
    # A loss that falls is better: the floor of a *_loss metric is a ceiling.
    verdict = evaluate_gate(GATES, metrics(0.9, 0.85, 0.95, loss=0.7), {"base": BASE}, None)
    assert ("floor", "log_loss") in failed(verdict), "log_loss 0.7 is above its maximum 0.6"


def test_no_baseline_skips_comparisons_but_keeps_floors():
    verdict = evaluate_gate(GATES, metrics(0.9, 0.85, 0.95), {"base": None}, None)
    statuses = {(r["rule"], r["against"]): r["status"] for r in verdict["rules"]}
    assert statuses[("max_regression", "base")] == "skipped"
    assert statuses[("floor", "floor")] == "passed"
    assert verdict["passed"]
    assert any("no baseline" in r["detail"] for r in verdict["rules"])


def test_the_deployed_model_is_checked_too_when_known():
    deployed = {"balanced_accuracy_score": 0.99, "log_loss": 0.05}
    verdict = evaluate_gate(
        GATES, metrics(0.90, 0.86, 0.94), {"base": BASE, "deployed": deployed}, None
    )
    assert ("non_inferiority", "balanced_accuracy_score") in [
        (r["rule"], r["metric"])
        for r in verdict["rules"]
        if r["status"] == "failed" and r["against"] == "deployed"
    ], "worse than the deployed model beyond the interval"
    assert all(r["status"] == "passed" for r in verdict["rules"] if r["against"] == "base")


def test_advisory_mode_never_blocks():
    advisory = GATES.model_copy(update={"mode": "advisory"})
    verdict = evaluate_gate(advisory, metrics(0.5, 0.4, 0.6), {"base": BASE}, None)
    assert not verdict["passed"]
    assert not verdict["blocking"]


@pytest.mark.parametrize(
    ("latency", "status"), [(3.0, "passed"), (30.0, "warned"), (None, "warned")]
)
def test_latency_budget_is_advisory(latency, status):
    # Given a latency over the budget (a busy runner) or none measured, then the rule warns
    # and the gate still passes: wall-clock time on CI must not fail a PR.
    gates = GatesParams(latency_budget_ms_per_row=10.0)
    verdict = evaluate_gate(gates, metrics(0.9, 0.8, 0.95), {"base": BASE}, latency)
    assert verdict["rules"][-1]["rule"] == "latency"
    assert verdict["rules"][-1]["status"] == status
    assert verdict["passed"], "the latency budget alone blocked the gate"
