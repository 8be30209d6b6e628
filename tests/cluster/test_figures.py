"""The figures of a fault's report (devstack/cluster_faults.py), from orders' times alone:
no cluster needed."""

from __future__ import annotations

import pytest

from devstack.cluster_faults import FaultReport, completion_figures

FAULT = 100.0  # the fault's wall time


def orders(*spans: tuple[float, float]) -> list[tuple[float, float, str]]:
    return [(c, u, "CONFIRMED") for c, u in spans]


def test_no_order_slowed_by_the_fault_means_normal_at_once() -> None:
    times = orders(*((t, t + 0.3) for t in range(90, 110)))
    figures = completion_figures(times, FAULT)
    assert figures["slowed"] == 0 and figures["normal_again_s"] == 0.0
    assert figures["p50_s"] == pytest.approx(0.3)
    assert figures["orders_per_s"] == pytest.approx(20 / 19.3)


def test_orders_complete_normally_again_from_the_first_placed_after_the_last_slowed() -> None:
    before = [(t, t + 0.5) for t in range(90, 100)]  # p95 0.5 s: slowed past 1.5 s
    stalled = [(t, 108.0) for t in (100, 101, 102, 103)]  # held until +8 s
    after = [(t, t + 0.5) for t in (104, 105, 106)]
    figures = completion_figures(orders(*before, *stalled, *after), FAULT)
    assert figures["threshold_s"] == pytest.approx(1.5)
    assert figures["slowed"] == 4
    assert figures["drained_s"] == pytest.approx(8.0)
    assert figures["normal_again_s"] == pytest.approx(4.5)  # the order placed at 104
    assert figures["max_s"] == pytest.approx(8.0)


def test_a_backlog_to_the_end_of_the_burst_is_not_normal_within_it() -> None:
    times = orders((90, 90.4), (95, 95.4), (101, 115), (104, 116))
    assert completion_figures(times, FAULT)["normal_again_s"] is None


def test_a_report_fails_on_any_lost_unfinished_or_double_applied_order() -> None:
    assert FaultReport("consul-leader", 10, 5.0).ok
    assert not FaultReport("consul-leader", 10, 5.0, lost=["k-1"]).ok
    assert not FaultReport("consul-leader", 10, 5.0, not_final=["ord_1"]).ok
    assert not FaultReport("consul-leader", 10, 5.0, double_applied=["payment x2: o"]).ok
    assert not FaultReport("consul-leader", 10, 5.0, invariants="FAILED: ...").ok
