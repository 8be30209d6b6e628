"""4. Failover: two instances of a service, one SIGKILLed (a crash: no deregistration)
under a steady load from the Python client through the mesh (the Consul-resolved
round-robin channel; GetStock is NO_SIDE_EFFECTS, so the channel retries UNAVAILABLE).

Reported: the calls that failed, and the time from the kill until the last of them
(0 when none failed). Calls are timed on the wall clock, the same clock the kill is.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.load import Target, client_args, python_client
from bench.profiles import Profile
from bench.report import Report, at_most
from bench.stack import Stack

SECTION = "4. failover (2 instances, one SIGKILLed under load)"


def run(stack: Stack, profile: Profile, report: Report) -> dict[str, Any]:
    first, second = stack.servers(("mesh", "inventory", False), ("mesh", "inventory", False))
    assert stack.consul is not None
    stack.consul.wait_passing("inventory", 2)
    kill_after = profile.failover_seconds * 0.3
    killed: dict[str, float] = {}

    def kill() -> None:
        killed["at"] = time.time()
        second.kill()

    timer = threading.Timer(kill_after, kill)
    args = client_args(Target("mesh", service="inventory"), stack.consul_addr, stack.state)
    try:
        result = python_client(
            "unary",
            [
                *args,
                "--instances",
                "2",
                "--warmup",
                "200",
                "--rate",
                str(profile.failover_rate),
                "--duration",
                str(profile.failover_seconds),
                "--failures",
            ],
            log=stack.log,
            on_go=timer.start,
        )
    finally:
        timer.cancel()
    stack.stop(first)
    stack.stop(second)

    kill_at = killed.get("at", float("nan"))
    failures = result.pop("failures", [])
    after = [f for f in failures if f[1] >= kill_at]
    recovered = max((end for _, end, _ in after), default=kill_at) - kill_at
    total = result["count"]
    failed = result["errors"]
    raw = {**result, "kill_at": kill_at, "failures": failures[:1000]}
    report.describe(
        SECTION,
        f"the Python client at {profile.failover_rate:g} calls/s for"
        f" {profile.failover_seconds:g} s through the mesh's round-robin channel;\none of the"
        f" two instances SIGKILLed after {kill_after:g} s (no deregistration: Consul's check"
        " finds it).",
    )
    report.add(SECTION, "calls made", total, "")
    report.add(
        SECTION,
        "time from the kill until calls stop failing",
        recovered,
        "s",
        at_most(3.0),
    )
    report.add(SECTION, "failed calls", failed, "")
    report.add(
        SECTION,
        "failed calls, share of the run",
        100.0 * failed / total if total else float("nan"),
        "%",
        at_most(0.1),
    )
    report.add(SECTION, "p99 latency over the run", result["p99_ms"], "ms")
    return raw
