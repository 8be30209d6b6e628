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
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from bench.client import place_order_request
from bench.load import Target, call_timeout, ghz_command, python_client
from bench.procs import Child
from bench.profiles import Profile
from bench.report import Report, at_least, at_most
from bench.servers import SKU
from bench.stack import PLACE_ORDER, Stack
from devstack.nats import OBSERVER

SECTION = "3. order flow (4 services + NATS JetStream)"
SERVICES = ("inventory", "payment", "shipping", "order")
SAGA_TIMEOUT = "300"


def start_services(stack: Stack, env: dict[str, dict[str, str]]) -> dict[str, Child]:
    """The four services as ``make run`` starts them, with ``env`` each, a seeded inventory
    and a long saga timeout; once each passes its Consul check."""
    seed = stack.state / "inventory-seed.json"
    seed.write_text(json.dumps({SKU: 10**12}))
    env = {name: dict(env.get(name, {})) for name in SERVICES}
    env["inventory"]["SHOP_INVENTORY_SEED"] = str(seed)
    env["order"]["SHOP_ORDER_SAGA_TIMEOUT"] = SAGA_TIMEOUT
    procs = dict(zip(SERVICES, stack.domain_services(list(SERVICES), env), strict=True))
    assert stack.consul is not None
    for name in SERVICES:
        stack.consul.wait_passing(name, timeout=60)
    return procs


def measured(
    procs: dict[str, Child],
    client: Callable[[list[str]], dict[str, Any]],
    others: dict[str, Callable[[], float]],
    flags: list[str],
) -> dict[str, Any]:
    """One run of ``client`` with ``flags``, with the services' CPU per order (and
    ``others``': CPU-second counters, e.g. a database server's)."""
    before = {name: p.cpu() for name, p in procs.items()}
    others_before = {name: cpu() for name, cpu in others.items()}
    result = client(flags)
    cpu = {name: p.cpu() - before[name] for name, p in procs.items()}
    placed = result["placed"] or float("nan")
    result["services_cpu_s"] = sum(cpu.values())
    result["services_cpu_ms_per_order"] = sum(cpu.values()) / placed * 1000
    result["cpu_ms_per_order"] = {name: c / placed * 1000 for name, c in cpu.items()}
    for name, counter in others.items():
        used = counter() - others_before[name]
        result[f"{name}_cpu_ms_per_order"] = used / placed * 1000
    return result


def order_runs(
    profile: Profile,
    procs: dict[str, Child],
    client: Callable[[list[str]], dict[str, Any]],
    others: dict[str, Callable[[], float]] | None = None,
    saturating: list[str] | None = None,
) -> dict[str, Any]:
    """``client`` (the load client, given its load flags) at ``profile``'s fixed rate, then at
    saturation (``saturating``: its flags for that run; by default its own callers); each
    result with the services' CPU per order (``measured``); with the services' peak RSS."""
    others = others or {}
    fixed = measured(procs, client, others, [
        "--rate", str(profile.orders_rate),
        "--duration", str(profile.orders_seconds),
        "--warmup", "20",
    ])  # fmt: skip
    saturated = measured(procs, client, others, saturating or [
        "--concurrency", str(profile.orders_concurrency),
        "--total", str(profile.orders_total),
    ])  # fmt: skip
    rss = {name: p.peak_rss_mib() for name, p in procs.items()}
    return {"fixed_rate": fixed, "saturation": saturated, "peak_rss_mib": rss}


def ghz_placing(stack: Stack, profile: Profile, order: Child) -> list[str]:
    """bench.client's flags for a run at saturation where ghz places the orders (as the
    operator, through the order instance's mTLS port, each with an idempotency key of its
    own) and the client only follows them to their final events.

    The requests are written out beforehand, one per order with its key, and ghz sends them
    in turn (templates off): rendering a ``{{newUUID}}`` template into each call's request
    took a third of ghz's CPU (0.60 ms an order, 0.33 to 0.41 ms without), taken from the
    two cores the services it measures run on."""
    customer = f"bench-{uuid.uuid4().hex[:8]}"
    requests = []
    for _ in range(profile.orders_total):
        request = json_format.MessageToDict(
            place_order_request(customer), preserving_proto_field_name=True
        )
        request["idempotency_key"] = uuid.uuid4().hex
        requests.append(request)
    data_file = stack.state / "place-orders.json"
    data_file.write_text(json.dumps(requests))
    cmd = ghz_command(
        Target("mesh", order.address, stack.certs("operator"), "order"),
        stack.protoset(),
        PLACE_ORDER,
        concurrency=profile.orders_concurrency,
        total=profile.orders_total,
        timeout=call_timeout("/" + PLACE_ORDER),
        data_file=data_file,
    )
    return ["--ghz", json.dumps(cmd)]


def add_rows(report: Report, section: str, r: dict[str, Any], column: str) -> None:
    """The figures of one ``order_runs`` result (``r``) in ``column`` of ``section``."""
    rows = [
        ("orders placed", r["placed"], ""),
        ("reached CONFIRMED", r["confirmed"], ""),
        ("reached CANCELLED", r["cancelled"], ""),
        ("not final when the run ended", r["unfinished"], ""),
        ("failed PlaceOrder calls", r["place_errors"], ""),
        ("orders/s to a final state", r["final_per_s"], "/s"),
        ("PlaceOrder call p50", r["place_p50_ms"], "ms"),
        ("PlaceOrder call p99", r["place_p99_ms"], "ms"),
        ("PlaceOrder -> CONFIRMED p50", r["confirm"]["p50_ms"], "ms"),
        ("PlaceOrder -> CONFIRMED p99", r["confirm"]["p99_ms"], "ms"),
        ("services' CPU per order (4 processes)", r["services_cpu_ms_per_order"], "ms"),
    ]
    for name, value, unit in rows:
        if r.get("placed_by") == "ghz" and name.startswith("PlaceOrder -> "):
            continue  # ghz's orders: when each was placed is not known
        report.add(section, name, value, unit, column=column)


def client_flags(stack: Stack, profile: Profile) -> list[str]:
    """bench.client's flags for the orders scenario on ``stack``'s NATS."""
    assert stack.nats is not None
    return [
        "--consul", stack.consul_addr,
        "--state-dir", str(stack.state),
        "--nats", stack.nats_url,
        "--nats-creds", str(stack.nats.creds(OBSERVER)),
        "--settle", str(profile.orders_settle),
        "--timeout", "10",
    ]  # fmt: skip


def run(stack: Stack, profile: Profile, report: Report) -> dict[str, Any]:
    stack.start_nats()
    procs = start_services(stack, {})
    base = client_flags(stack, profile)

    def client(flags: list[str]) -> dict[str, Any]:
        return python_client("orders", [*base, *flags], log=stack.log)

    raw = order_runs(profile, procs, client, saturating=ghz_placing(stack, profile, procs["order"]))
    # The Python client at saturation too: it shares the 2 cores with the services (about
    # 1 ms of CPU an order), so it finishes fewer of them.
    raw["saturation_python_client"] = measured(procs, client, {}, [
        "--concurrency", str(profile.orders_concurrency),
        "--total", str(profile.orders_total),
    ])  # fmt: skip
    fixed, saturated, rss = raw["fixed_rate"], raw["saturation"], raw["peak_rss_mib"]

    rate = profile.orders_rate
    report.describe(
        SECTION,
        "the real services, as `make run` starts them; an order is followed from its PlaceOrder"
        " call\nto the saga's final event. CPU: the four services' processes (NATS not counted)."
        "\nPlaced by the Python client through the mesh, or at saturation by ghz (the client"
        " then only\nfollows the final events: ghz leaves the services most of the CPU the"
        " client takes).",
    )
    columns = (
        (f"{rate:g} orders/s", fixed),
        ("saturation (ghz)", saturated),
        ("saturation (Python)", raw["saturation_python_client"]),
    )
    for label, r in columns:
        add_rows(report, SECTION, r, label)
        for name in SERVICES:
            report.add(
                SECTION, f"  of which {name}", r["cpu_ms_per_order"][name], "ms", column=label
            )
    report.add(
        SECTION,
        "orders/s to a final state at saturation (ghz places them)",
        saturated["final_per_s"],
        "/s",
        at_least(300),
    )
    report.add(
        SECTION,
        "orders/s to a final state at saturation (the Python client places them)",
        raw["saturation_python_client"]["final_per_s"],
        "/s",
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
