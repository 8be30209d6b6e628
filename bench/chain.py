"""2. One hop vs a chain: client -> inventory, and client -> order -> inventory.

Both through the mesh, with the same method at every hop: ``order`` here is a relay
(bench/servers.py) registered under that name, whose GetStock asks ``inventory`` through
its own mesh client, with the identity ``order`` and the deadline that is left. So the
chain is two hops of the same kind, and its latency and CPU should be about twice the one
hop's. The deadline figures show what each hop had left of the client's.
"""

from __future__ import annotations

from typing import Any

from bench.load import Target, client_args, python_client
from bench.profiles import Profile
from bench.report import Report, at_most
from bench.stack import Stack

SECTION = "2. one hop vs a chain (mesh, Python client)"
DEADLINE = 2.0  # seconds, the client's deadline for the propagation figure


def run(stack: Stack, profile: Profile, report: Report) -> dict[str, Any]:
    inventory, relay = stack.servers(("mesh", "inventory", False), ("mesh", "order", True))
    assert stack.consul is not None
    stack.consul.wait_passing("inventory")
    stack.consul.wait_passing("order")
    raw: dict[str, Any] = {}
    n = profile.chain_calls
    paths = {
        "one hop": (Target("mesh", service="inventory"), [inventory.pid]),
        "chain": (Target("mesh", service="order"), [inventory.pid, relay.pid]),
    }
    for label, (target, pids) in paths.items():
        args = [*client_args(target, stack.consul_addr, stack.state), "--warmup", str(n // 4)]
        raw[label] = {
            "sequential": python_client(
                "unary",
                [*args, "--concurrency", "1", "--total", str(n)],
                log=stack.log,
                server_pids=pids,
            ),
            "concurrent": python_client(
                "unary",
                [*args, "--concurrency", "16", "--total", str(4 * n)],
                log=stack.log,
                server_pids=pids,
            ),
        }
    chain_args = client_args(paths["chain"][0], stack.consul_addr, stack.state)
    deadline = python_client("deadline", [*chain_args, "--timeout", str(DEADLINE)], log=stack.log)
    raw["deadline"] = deadline
    for child in (inventory, relay):
        stack.stop(child)

    report.describe(
        SECTION,
        "the same GetStock at every hop; `order` is a relay that calls inventory through its"
        " mesh.\nCPU: all server processes of the path (the relay also pays a client's share).",
    )
    for label in paths:
        seq, conc = raw[label]["sequential"], raw[label]["concurrent"]
        report.add(SECTION, "sequential calls: p50", seq["p50_ms"], "ms", column=label)
        report.add(SECTION, "sequential calls: p99", seq["p99_ms"], "ms", column=label)
        report.add(
            SECTION, "sequential: server CPU per call (all hops)", seq["cpu_us_per_call"], "µs",
            column=label,
        )  # fmt: skip
        report.add(SECTION, "16 concurrent callers: QPS", conc["qps"], "/s", column=label)
        report.add(SECTION, "16 concurrent callers: p99", conc["p99_ms"], "ms", column=label)
        report.add(
            SECTION, "failed calls", seq["errors"] + conc["errors"], "", column=label
        )  # fmt: skip
    one, chain = raw["one hop"]["sequential"], raw["chain"]["sequential"]
    report.add(
        SECTION,
        "chain / one hop, p50 latency (2.00 = linear)",
        chain["p50_ms"] / one["p50_ms"],
        "x",
    )
    report.add(
        SECTION,
        "chain / one hop, server CPU per call (2.00 = linear)",
        chain["cpu_us_per_call"] / one["cpu_us_per_call"],
        "x",
    )
    left = deadline["left_ms"]
    client_ms = deadline["timeout_ms"]
    order_ms, inventory_ms = left.get("order", float("nan")), left.get("inventory", float("nan"))
    # Propagated: no hop gets more than the client's deadline (a fresh default would be 5 s).
    # grpc rounds a deadline up on the wire, so a hop may see a hair more than its caller.
    report.add(
        SECTION,
        f"deadline: the client set {client_ms:.0f} ms; order had left",
        order_ms,
        "ms",
        at_most(client_ms),
    )
    report.add(
        SECTION,
        "deadline: inventory, the next hop, had left",
        inventory_ms,
        "ms",
        at_most(client_ms),
        note="what is left of the caller's deadline (grpc may round it up on the wire),"
        " never the method's default",
    )
    return raw
