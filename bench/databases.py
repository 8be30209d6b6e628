"""``make bench-databases``: the order flow (section 3's) on SQLite and on PostgreSQL, side
by side. ``make bench`` runs it after bench.run.

    python -m bench.databases            the full run (~2 minutes)
    python -m bench.databases --quick    tiny counts: proves the harness

For each backend, a stack of its own: Consul, NATS JetStream, the four real services as
``make run`` starts them (``DATABASE=sqlite``: a file each; ``DATABASE=postgres``: one
PostgreSQL 15 cluster, a database and a role each, as devstack/postgres.py sets it up),
and orders placed by bench.client at a fixed rate, then at saturation, each followed from
its PlaceOrder call to the saga's final event. The table has a column per backend and
load; the JSON, every raw measurement, goes to bench/results/databases-<timestamp>.json.
CPU: the four services' processes, and Postgres' own (its server and backends) apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import python_client
from bench.orders import SERVICES, add_rows, client_flags, order_runs, start_services
from bench.profiles import PROFILES, Profile
from bench.report import Report, finish, machine_info
from bench.stack import Stack

SECTION = "databases: the order flow on SQLite and on PostgreSQL"
BACKENDS = ("sqlite", "postgres")
RESULTS = Path(__file__).resolve().parent / "results"
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants, the ended ones it has reaped included
    (Postgres: the postmaster and its backends)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:  # ended meanwhile: its time is in its parent's now
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    own = sum(int(f) for f in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    return own + sum(tree_cpu(int(child)) for child in children)


def measure(database: str, profile: Profile) -> dict[str, Any]:
    """The order flow on ``database``, at ``profile``'s fixed rate and at saturation."""
    with Stack() as stack:
        stack.start_consul()
        stack.start_nats()
        env: dict[str, dict[str, str]] = {}
        others: dict[str, Callable[[], float]] = {}  # CPU-second counters beside the services'
        if database == "postgres":
            postgres = stack.start_postgres()
            env = {name: postgres.env(name) for name in SERVICES}
            others["postgres"] = lambda: tree_cpu(postgres.pid)
        procs = start_services(stack, env)
        base = client_flags(stack, profile)
        raw = order_runs(
            profile,
            procs,
            lambda flags: python_client("orders", [*base, *flags], log=stack.log),
            others,
        )
        for proc in procs.values():
            stack.stop(proc)
        return raw


def run(profile: Profile, report: Report) -> dict[str, Any]:
    raw = {}
    for database in BACKENDS:
        began = time.monotonic()
        print(f"bench: the order flow on {database} ...", file=sys.stderr, flush=True)
        raw[database] = measure(database, profile)
        print(f"bench: {database} took {time.monotonic() - began:.0f} s", file=sys.stderr)
    rate = profile.orders_rate
    report.describe(
        SECTION,
        "the four services as `make run DATABASE=...` starts them; an order is followed from"
        " its PlaceOrder call\nto the saga's final event. A stack of its own per backend.",
    )
    for database in BACKENDS:
        for load, r in ((f"{rate:g}/s", "fixed_rate"), ("saturation", "saturation")):
            m = raw[database][r]
            column = f"{database} {load}"
            add_rows(report, SECTION, m, column)
            report.add(
                SECTION, "Postgres' CPU per order (server + backends)",
                m.get("postgres_cpu_ms_per_order", 0.0), "ms", column=column,
            )  # fmt: skip
    return raw


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.databases", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny counts: proves the harness")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    a = p.parse_args(argv)
    profile = PROFILES["quick" if a.quick else "full"]
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = Report(profile.name, f"databases-{started}")
    machine = machine_info()
    t0 = time.monotonic()
    try:
        report.raw["databases"] = run(profile, report)
    except Exception as exc:
        report.errors["databases"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        finish(report, a.out, machine, t0)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
