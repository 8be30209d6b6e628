"""The mesh as the console draws it: services, instances and health from Consul's catalog,
edges from the intentions (allow or deny), each edge's calls a second, error share and p99
from the destination's metrics by caller (``mesh_server_caller_*``), over a window of
recent scrapes. Read with the gateway's own Consul token (the catalog, intentions and
mesh/faults/ are readable by every identity); metrics from each instance's loopback
``metrics_port`` (its Consul meta).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from services.gateway.console.promtext import EdgeStats, Scrape, edge_counts, window

log = logging.getLogger("gateway.console")

WINDOW = 15.0  # seconds of scrapes an edge's figures cover
CACHE = 1.0  # a topology younger than this is served again (many pages, one scrape)
BREAKER_STATES = {0: "closed", 1: "open", 2: "half-open"}
HIDDEN = {"consul"}


def intention_action(source: dict[str, Any]) -> str:
    """``allow`` or ``deny`` for one source of a service-intentions entry (L7 permissions:
    allow if any of them allows)."""
    if source.get("Action"):
        return str(source["Action"]).lower()
    perms = source.get("Permissions") or []
    return "allow" if any(str(p.get("Action", "")).lower() == "allow" for p in perms) else "deny"


@dataclass
class Instance:
    id: str
    address: str
    port: int
    health: str  # passing | warning | critical
    metrics_port: int | None


class Topology:
    """Reads Consul and the instances' metrics; ``snapshot()`` is what the page draws."""

    def __init__(self, consul_addr: str, consul_token: str, http: httpx.AsyncClient) -> None:
        self.consul = "http://" + consul_addr.removeprefix("http://").rstrip("/")
        self.token = consul_token
        self.http = http
        # Per destination instance: recent (time, scrape) pairs, oldest first.
        self._history: dict[str, deque[tuple[float, Scrape]]] = {}
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def consul_get(self, path: str, token: str | None = None) -> Any:
        resp = await self.http.get(
            self.consul + path, headers={"X-Consul-Token": token or self.token}, timeout=5.0
        )
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    async def snapshot(self) -> dict[str, Any]:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE:
                return self._cached[1]
            data = await self._build()
            self._cached = (time.monotonic(), data)
            return data

    async def _services(self) -> dict[str, list[Instance]]:
        names = await self.consul_get("/v1/catalog/services") or {}
        out: dict[str, list[Instance]] = {}
        for name in sorted(n for n in names if n not in HIDDEN):
            entries = await self.consul_get(f"/v1/health/service/{name}") or []
            instances = []
            for e in entries:
                svc = e["Service"]
                checks = [c["Status"] for c in e.get("Checks", [])]
                health = (
                    "critical"
                    if "critical" in checks
                    else "warning"
                    if "warning" in checks
                    else "passing"
                )
                meta = svc.get("Meta") or {}
                port = meta.get("metrics_port")
                instances.append(
                    Instance(
                        id=svc["ID"],
                        address=svc.get("Address") or "127.0.0.1",
                        port=int(svc.get("Port") or 0),
                        health=health,
                        metrics_port=int(port) if port and port.isdigit() else None,
                    )
                )
            out[name] = instances
        return out

    async def intentions(self) -> list[dict[str, Any]]:
        """Every service-intentions entry (one per destination)."""
        return list(await self.consul_get("/v1/config/service-intentions") or [])

    async def _scrape(self, instance: Instance) -> Scrape | None:
        if instance.metrics_port is None:
            return None
        try:
            resp = await self.http.get(
                f"http://127.0.0.1:{instance.metrics_port}/metrics", timeout=3.0
            )
            resp.raise_for_status()
            return Scrape.parse(resp.text)
        except (httpx.HTTPError, ValueError) as exc:
            log.info("no metrics from %s: %s", instance.id, exc)
            return None

    async def _build(self) -> dict[str, Any]:
        services = await self._services()
        entries = await self.intentions()
        now = time.monotonic()
        instances = [i for group in services.values() for i in group]
        scrapes = await asyncio.gather(*(self._scrape(i) for i in instances))
        current: dict[str, Scrape] = {}
        for inst, scrape in zip(instances, scrapes, strict=True):
            if scrape is None:
                continue
            current[inst.id] = scrape
            hist = self._history.setdefault(inst.id, deque())
            hist.append((now, scrape))
            while len(hist) > 2 and now - hist[1][0] >= WINDOW:
                hist.popleft()
        for gone in set(self._history) - {i.id for i in instances}:
            del self._history[gone]

        edges = []
        for entry in entries:
            target = entry["Name"]
            for source in entry.get("Sources") or []:
                name = source.get("Name", "")
                if name == "*" or name not in services or target not in services:
                    continue
                stats = self._edge_stats(services[target], name)
                edges.append(
                    {
                        "source": name,
                        "target": target,
                        "action": intention_action(source),
                        "l7": bool(source.get("Permissions")),
                        **asdict(stats),
                    }
                )
        breakers = []
        for inst in instances:
            scrape = current.get(inst.id)
            if scrape is None:
                continue
            owner = next(n for n, group in services.items() if inst in group)
            for labels, value in scrape.select("mesh_breaker_state"):
                breakers.append(
                    {
                        "instance": inst.id,
                        "caller": owner,
                        "target": labels.get("service", ""),
                        "state": BREAKER_STATES.get(int(value), str(value)),
                    }
                )
        events = {}
        for name, group in services.items():
            events[name] = sum(self._event_rate(i) for i in group)
        return {
            "services": [
                {
                    "name": name,
                    "instances": [asdict(i) for i in group],
                    "healthy": sum(1 for i in group if i.health == "passing"),
                    "events_per_s": round(events.get(name, 0.0), 2),
                }
                for name, group in services.items()
            ],
            "edges": edges,
            "breakers": breakers,
            "window_s": WINDOW,
        }

    def _edge_stats(self, instances: list[Instance], caller: str) -> EdgeStats:
        """The edge's figures, summed over the destination's instances."""
        rate = calls = errors = 0.0
        p99: float | None = None
        for inst in instances:
            hist = self._history.get(inst.id)
            if not hist:
                continue
            (t0, old), (t1, new) = hist[0], hist[-1]
            if t1 <= t0:
                continue
            s = window(edge_counts(old, caller), edge_counts(new, caller), t1 - t0)
            rate += s.rate
            calls += s.calls
            errors += s.error_rate * s.calls
            if s.p99_ms is not None:
                p99 = s.p99_ms if p99 is None else max(p99, s.p99_ms)
        return EdgeStats(
            rate=round(rate, 3),
            error_rate=round(errors / calls, 4) if calls else 0.0,
            p99_ms=None if p99 is None else round(p99, 2),
            calls=int(calls),
        )

    def _event_rate(self, inst: Instance) -> float:
        hist = self._history.get(inst.id)
        if not hist or len(hist) < 2:
            return 0.0
        (t0, old), (t1, new) = hist[0], hist[-1]

        def ok(s: Scrape) -> float:
            return sum(v for _, v in s.select("mesh_events_processed_total", outcome="ok"))

        return max(ok(new) - ok(old), 0.0) / (t1 - t0) if t1 > t0 else 0.0
