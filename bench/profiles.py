"""How much load each section makes: ``full`` for ``make bench`` (a few minutes in all),
``quick`` for ``make bench-quick`` (the same sections, tiny counts: proves the harness)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # 1. per-call overhead
    rounds: int  # saturation runs per way, interleaved; the median is reported
    ghz_total: int  # calls of one ghz saturation run
    ghz_warmup: int
    ghz_concurrency: int
    ghz_connections: int
    paced_seconds: float  # a rate-limited run (half of bare saturation)
    py_total: int  # calls of one closed-loop Python run
    py_warmup: int
    py_concurrency: int
    # 2. one hop vs a chain
    chain_calls: int  # sequential calls (latency), then the same number at concurrency
    # 3. order flow
    orders_rate: float
    orders_seconds: float
    orders_total: int  # at saturation
    orders_concurrency: int
    orders_settle: float  # seconds to wait for the last orders to reach a final state
    # 4. failover
    failover_rate: float
    failover_seconds: float
    # 5. scaling
    scaling_total: int  # calls per step (split over the instances)
    scaling_instances: tuple[int, ...] = (1, 2, 4)


FULL = Profile(
    name="full",
    rounds=5,  # interleaved: on 2 shared cores a single round of a way swings by ±30 %
    ghz_total=12_000,
    ghz_warmup=1_000,
    ghz_concurrency=32,
    ghz_connections=4,
    paced_seconds=4.0,
    py_total=6_000,
    py_warmup=500,
    py_concurrency=32,
    chain_calls=1_000,
    orders_rate=50.0,
    orders_seconds=10.0,
    orders_total=1_500,
    orders_concurrency=32,
    orders_settle=60.0,
    failover_rate=200.0,
    failover_seconds=10.0,
    scaling_total=16_000,
)

QUICK = Profile(
    name="quick",
    rounds=1,
    ghz_total=400,
    ghz_warmup=100,
    ghz_concurrency=16,
    ghz_connections=2,
    paced_seconds=0.5,
    py_total=300,
    py_warmup=50,
    py_concurrency=16,
    chain_calls=60,
    orders_rate=50.0,
    orders_seconds=1.0,
    orders_total=60,
    orders_concurrency=8,
    orders_settle=20.0,
    failover_rate=100.0,
    failover_seconds=2.0,
    scaling_total=400,
)

PROFILES = {p.name: p for p in (FULL, QUICK)}
