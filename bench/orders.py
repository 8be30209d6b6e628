"""3. The order flow through the whole saga: the four real services as ``make run`` starts
them (each its own process, its own SQLite), a real NATS JetStream, and orders placed by
the Python client through the mesh, at a fixed rate and then at saturation.

An order is followed from its PlaceOrder call to the saga's final event (OrderConfirmed or
OrderCancelled, read from the broker by a plain subscription in the client). The saga's
timeout is raised for the run (SHOP_ORDER_SAGA_TIMEOUT), so a backlog shows up as latency,
not as orders cancelled by the sweeper.
"""

from __future__ import annotations

import json
from typing import Any

from bench.load import python_client
from bench.profiles import Profile
from bench.report import Report, at_least, at_most
from bench.servers import SKU
from bench.stack import Stack
from devstack.nats import OBSERVER

SECTION = "3. order flow (4 services + NATS JetStream)"
SERVICES = ("inventory", "payment", "shipping", "order")
SAGA_TIMEOUT = "300"


def run(stack: Stack, profile: Profile, report: Report) -> dict[str, Any]:
    stack.start_nats()
    assert stack.nats is not None
    seed = stack.state / "inventory-seed.json"
    seed.write_text(json.dumps({SKU: 10**12}))
    env = {
        "inventory": {"SHOP_INVENTORY_SEED": str(seed)},
        "order": {"SHOP_ORDER_SAGA_TIMEOUT": SAGA_TIMEOUT},
    }
    procs = dict(zip(SERVICES, stack.domain_services(list(SERVICES), env), strict=True))
    assert stack.consul is not None
    for name in SERVICES:
        stack.consul.wait_passing(name)
    base = [
        "--consul", stack.consul_addr,
        "--state-dir", str(stack.state),
        "--nats", stack.nats_url,
        "--nats-creds", str(stack.nats.creds(OBSERVER)),
        "--settle", str(profile.orders_settle),
        "--timeout", "10",
    ]  # fmt: skip

    def orders(*extra: str) -> dict[str, Any]:
        before = {name: p.cpu() for name, p in procs.items()}
        result = python_client("orders", [*base, *extra], log=stack.log)
        cpu = {name: p.cpu() - before[name] for name, p in procs.items()}
        placed = result["placed"] or float("nan")
        result["services_cpu_s"] = sum(cpu.values())
        result["services_cpu_ms_per_order"] = sum(cpu.values()) / placed * 1000
        result["cpu_ms_per_order"] = {name: c / placed * 1000 for name, c in cpu.items()}
        return result

    fixed = orders(
        "--rate", str(profile.orders_rate),
        "--duration", str(profile.orders_seconds),
        "--warmup", "20",
    )  # fmt: skip
    saturated = orders(
        "--concurrency", str(profile.orders_concurrency),
        "--total", str(profile.orders_total),
    )  # fmt: skip
    rss = {name: p.peak_rss_mib() for name, p in procs.items()}
    raw = {"fixed_rate": fixed, "saturation": saturated, "peak_rss_mib": rss}

    rate = profile.orders_rate
    report.describe(
        SECTION,
        "the real services, as `make run` starts them; an order is followed from its PlaceOrder"
        " call\nto the saga's final event. CPU: the four services' processes (NATS not counted).",
    )
    for label, r in ((f"{rate:g} orders/s", fixed), ("saturation", saturated)):
        report.add(SECTION, "orders placed", r["placed"], "", column=label)
        report.add(SECTION, "reached CONFIRMED", r["confirmed"], "", column=label)
        report.add(SECTION, "reached CANCELLED", r["cancelled"], "", column=label)
        report.add(SECTION, "not final when the run ended", r["unfinished"], "", column=label)
        report.add(SECTION, "failed PlaceOrder calls", r["place_errors"], "", column=label)
        report.add(SECTION, "PlaceOrder call p50", r["place_p50_ms"], "ms", column=label)
        report.add(SECTION, "PlaceOrder call p99", r["place_p99_ms"], "ms", column=label)
        report.add(
            SECTION, "PlaceOrder -> CONFIRMED p50", r["confirm"]["p50_ms"], "ms", column=label
        )
        report.add(
            SECTION, "PlaceOrder -> CONFIRMED p99", r["confirm"]["p99_ms"], "ms", column=label
        )
        report.add(
            SECTION,
            "orders reaching a final state per second",
            r["final_per_s"],
            "/s",
            column=label,
        )
        report.add(
            SECTION, "services' CPU per order (4 processes)", r["services_cpu_ms_per_order"], "ms",
            column=label,
        )  # fmt: skip
        for name in SERVICES:
            report.add(
                SECTION, f"  of which {name}", r["cpu_ms_per_order"][name], "ms", column=label
            )
    report.add(
        SECTION,
        "orders/s to a final state at saturation",
        saturated["final_per_s"],
        "/s",
        at_least(300),
    )
    report.add(
        SECTION,
        f"p99 PlaceOrder -> CONFIRMED at {rate:g} orders/s",
        fixed["confirm"]["p99_ms"],
        "ms",
        at_most(200),
    )
    report.add(
        SECTION,
        "peak RSS of a service process (largest of the 4)",
        max(rss.values()),
        "MiB",
        at_most(80),
        note=", ".join(f"{k} {v:.0f}" for k, v in rss.items()),
    )
    for proc in procs.values():
        stack.stop(proc)
    return raw
