"""The console's edge figures from two scrapes (no browser, no stack): rate, error share
and p99 from the metrics by caller, and the action an intention's source stands for."""

from __future__ import annotations

import pytest

from services.gateway.console.promtext import Scrape, edge_counts, quantile, window
from services.gateway.console.topology import intention_action


def exposition(ok: int, denied: int, buckets: dict[str, int]) -> str:
    lines = [
        "# TYPE mesh_server_caller_handled counter",
        f'mesh_server_caller_handled_total{{caller="order",grpc_code="OK"}} {ok}',
        "mesh_server_caller_handled_total"
        f'{{caller="order",grpc_code="PERMISSION_DENIED"}} {denied}',
        'mesh_server_caller_handled_total{caller="gateway",grpc_code="OK"} 99',
        "# TYPE mesh_server_caller_seconds histogram",
    ]
    lines += [
        f'mesh_server_caller_seconds_bucket{{caller="order",le="{le}"}} {n}'
        for le, n in buckets.items()
    ]
    lines.append(f'mesh_server_caller_seconds_count{{caller="order"}} {ok + denied}')
    return "\n".join(lines) + "\n"


def test_a_window_of_two_scrapes_gives_rate_errors_and_p99() -> None:
    old = Scrape.parse(exposition(10, 0, {"0.001": 10, "0.01": 10, "+Inf": 10}))
    new = Scrape.parse(exposition(28, 2, {"0.001": 18, "0.01": 30, "+Inf": 30}))
    stats = window(edge_counts(old, "order"), edge_counts(new, "order"), 10.0)
    assert stats.calls == 20
    assert stats.rate == pytest.approx(2.0)
    assert stats.error_rate == pytest.approx(0.1)
    # 20 calls: 8 under 1 ms, 12 in (1 ms, 10 ms]; the 99th is near the top of the second.
    assert stats.p99_ms is not None and 9.0 < stats.p99_ms <= 10.0


def test_no_calls_no_p99_and_a_restarted_instance_counts_from_zero() -> None:
    same = Scrape.parse(exposition(5, 0, {"0.001": 5, "+Inf": 5}))
    idle = window(edge_counts(same, "order"), edge_counts(same, "order"), 5.0)
    assert (idle.calls, idle.p99_ms, idle.error_rate) == (0, None, 0.0)
    restarted = Scrape.parse(exposition(2, 0, {"0.001": 2, "+Inf": 2}))
    after = window(edge_counts(same, "order"), edge_counts(restarted, "order"), 5.0)
    assert after.calls == 2


def test_quantile_of_cumulative_buckets() -> None:
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.5, {0.1: 10.0, 1.0: 10.0, float("inf"): 10.0}) == pytest.approx(0.05)
    assert quantile(0.99, {0.1: 0.0, float("inf"): 4.0}) == pytest.approx(0.1)


def test_the_action_of_an_intention_source() -> None:
    assert intention_action({"Name": "order", "Action": "deny"}) == "deny"
    assert intention_action({"Name": "order", "Action": "allow"}) == "allow"
    l7 = {"Name": "order", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/x"}}]}
    assert intention_action(l7) == "allow"
    assert intention_action({"Name": "order", "Permissions": [{"Action": "deny"}]}) == "deny"
