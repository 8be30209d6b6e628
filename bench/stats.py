"""Percentiles of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of sorted samples, by the nearest-rank method."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, mean and max of latencies in milliseconds (NaN when there are none)."""
    ordered = sorted(latencies_ms)
    mean = sum(ordered) / len(ordered) if ordered else math.nan
    return {
        "p50_ms": percentile(ordered, 50),
        "p90_ms": percentile(ordered, 90),
        "p99_ms": percentile(ordered, 99),
        "mean_ms": mean,
        "max_ms": ordered[-1] if ordered else math.nan,
    }
