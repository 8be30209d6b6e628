"""5. Scaling: QPS with 1, 2 and 4 processes of one service (the mesh server of section 1)
registered in Consul. A Python process serves on one core, so a service scales by
processes; this machine has 2 cores, which the load generator shares.

The instances are found the way a client finds them, from Consul's health API (passing
only); each gets its share of the load from a ghz of its own (ghz does no Consul
discovery), all at once, with the same total concurrency at every step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.load import Target, cpu_of, ghz
from bench.procs import Child
from bench.profiles import Profile
from bench.report import Report
from bench.stack import GET_STOCK, Stack

SECTION = "5. scaling (processes of one service, in Consul)"


def run(stack: Stack, profile: Profile, report: Report) -> dict[str, Any]:
    assert stack.consul is not None
    operator = stack.certs("operator")
    protoset = stack.protoset()
    running: list[Child] = []
    raw: dict[str, Any] = {}
    concurrency, connections = profile.ghz_concurrency, profile.ghz_connections
    for n in profile.scaling_instances:
        running += stack.servers(*[("mesh", "inventory", False)] * (n - len(running)))
        stack.consul.wait_passing("inventory", n)
        entries = stack.consul.get("/v1/health/service/inventory?passing=1")
        assert isinstance(entries, list)
        addresses = [f"{e['Service']['Address']}:{e['Service']['Port']}" for e in entries]
        pids = [c.pid for c in running]

        def load(address: str, total: int, n: int = n) -> dict[str, Any]:
            return ghz(
                Target("mesh", address, operator),
                protoset,
                GET_STOCK,
                concurrency=max(1, concurrency // n),
                connections=max(1, connections // n),
                total=total,
            )

        with ThreadPoolExecutor(len(addresses)) as pool:  # warm-up, then measured
            list(pool.map(load, addresses, [profile.ghz_warmup // n] * n))
            before = cpu_of(pids)
            results = list(pool.map(load, addresses, [profile.scaling_total // n] * n))
            cpu = cpu_of(pids) - before
        ok = sum(r["ok"] for r in results)
        elapsed = max(r["elapsed_s"] for r in results)
        raw[str(n)] = {
            "instances": addresses,
            "per_instance": results,
            "qps": ok / elapsed if elapsed else 0.0,
            "errors": sum(r["errors"] for r in results),
            "server_cpu_us_per_call": cpu / ok * 1e6 if ok else float("nan"),
            "p99_ms": max(r["p99_ms"] for r in results),
        }
    for child in running:
        stack.stop(child)

    report.describe(
        SECTION,
        "the mesh server of section 1; one ghz per instance found in Consul, the same total"
        f" concurrency ({concurrency})\nat every step. 2 cores here, shared with the load"
        " generators: more processes than cores cannot add much.",
    )
    base = raw[str(profile.scaling_instances[0])]["qps"]
    for n in profile.scaling_instances:
        step = raw[str(n)]
        label = f"{n} process{'es' if n > 1 else ''}"
        report.add(SECTION, "QPS (ghz, all instances)", step["qps"], "/s", column=label)
        report.add(SECTION, "speed-up over 1 process", step["qps"] / base, "x", column=label)
        report.add(SECTION, "p99 (slowest instance)", step["p99_ms"], "ms", column=label)
        report.add(
            SECTION, "server CPU per call", step["server_cpu_us_per_call"], "µs", column=label
        )
        report.add(SECTION, "failed calls", step["errors"], "", column=label)
    return raw
