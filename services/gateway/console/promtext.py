"""Prometheus text scraped from the instances, and what a window of two scrapes says:
calls a second, the share that failed, and the 99th percentile from histogram buckets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    """One instance's samples: ``{(sample name, sorted labels): value}``."""

    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        out: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return cls(out)

    def select(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """The samples of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return [
            (dict(lbl), v)
            for (n, lbl), v in self.samples.items()
            if n == name and want.issubset(lbl)
        ]


@dataclass(frozen=True)
class EdgeStats:
    rate: float  # calls a second
    error_rate: float  # share of them not OK (0..1)
    p99_ms: float | None  # None: no call in the window
    calls: int  # calls in the window


def _sum_by(samples: list[tuple[dict[str, str], float]], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in samples:
        k = labels.get(key, "")
        out[k] = out.get(k, 0.0) + v
    return out


def edge_counts(scrape: Scrape, caller: str) -> tuple[float, float, dict[float, float]]:
    """Calls, errors and cumulative latency buckets (by upper bound) of ``caller``."""
    codes = _sum_by(scrape.select("mesh_server_caller_handled_total", caller=caller), "grpc_code")
    total = sum(codes.values())
    errors = total - codes.get("OK", 0.0)
    buckets = {
        float(le): v
        for le, v in _sum_by(
            scrape.select("mesh_server_caller_seconds_bucket", caller=caller), "le"
        ).items()
    }
    return total, errors, buckets


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile (seconds) of cumulative buckets, linear within a bucket, as PromQL's
    histogram_quantile does; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        count = buckets[b]
        if count >= rank:
            if math.isinf(b):
                return prev_bound
            if count == prev_count:
                return b
            return prev_bound + (b - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = b, count
    return prev_bound


def window(
    old: tuple[float, float, dict[float, float]],
    new: tuple[float, float, dict[float, float]],
    seconds: float,
) -> EdgeStats:
    """What happened between two samples of ``edge_counts``, ``seconds`` apart. A counter
    that went down (a restarted instance) counts from zero."""
    (t0, e0, b0), (t1, e1, b1) = old, new
    if t1 < t0:
        t0, e0, b0 = 0.0, 0.0, {}
    calls = t1 - t0
    errors = max(e1 - e0, 0.0)
    delta = {le: max(v - b0.get(le, 0.0), 0.0) for le, v in b1.items()}
    p99 = quantile(0.99, delta) if calls > 0 else None
    return EdgeStats(
        rate=calls / seconds if seconds > 0 else 0.0,
        error_rate=errors / calls if calls > 0 else 0.0,
        p99_ms=None if p99 is None else p99 * 1000.0,
        calls=round(calls),
    )
