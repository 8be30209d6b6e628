"""``make bench-brokers`` (part of ``make bench``): the order flow on each event broker, side
by side, in one run on one machine.

For each broker in turn (NATS, Kafka, then RabbitMQ and SQS where their servers are
installed): the broker, the four real services on it (fresh databases), and the Python
client placing orders through the mesh, first at a fixed rate (the latency of an order
from its PlaceOrder call to OrderConfirmed, p50/p99) and then by a closed loop at
saturation (orders reaching a final state per second). The client follows each order to
its final event through the same ``EventBus`` the services use (a consumer group of its
own), so every broker is observed the same way. Then the services and the broker stop.

    python -m bench.brokers                 the full run (~1-2 min per broker)
    python -m bench.brokers --quick         tiny counts
    python -m bench.brokers --brokers nats,kafka
    python -m bench.brokers client ...      the load client (run by the section)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.client import RESULT, FinalEvents, measure_orders
from bench.orders import SERVICES, order_runs, start_services
from bench.procs import python_env
from bench.profiles import PROFILES, Profile
from bench.report import Report, finish, machine_info
from bench.stack import Stack
from devstack.nats import ADMIN
from devstack.tools import ROOT

SECTION = "6. the order flow on each event broker"
BROKERS = ("nats", "kafka", "rabbitmq", "sqs")
RESULTS = Path(__file__).resolve().parent / "results"


# --- the section -------------------------------------------------------------------------


def broker_up(stack: Stack, kind: str) -> tuple[dict[str, str], list[str]]:
    """Start broker ``kind`` in ``stack``: the env each service gets, and the client's flags."""
    stack.broker = kind
    if kind == "nats":
        nats = stack.start_nats()
        creds = nats.creds(ADMIN)
        return {}, ["--nats", nats.url, *(["--nats-creds", str(creds)] if creds else [])]
    stack.broker_server = None
    server = stack.start_broker()
    # the observer consumes as the order service would, or as the broker's administrator
    # where each service may use only its own queue (RabbitMQ)
    admin_env = getattr(server, "admin_env", None)
    env = admin_env() if admin_env is not None else server.env("order")
    return env, ["--broker-url", env.get("MESH_BROKER_URL", server.url)]


def broker_down(stack: Stack, kind: str) -> None:
    if kind == "nats":
        if stack.nats is not None:
            stack.nats.stop()
            stack.nats = None
    elif stack.broker_server is not None:
        stack.broker_server.stop()
        stack.broker_server = None


def one_broker(stack: Stack, kind: str, profile: Profile) -> dict[str, Any]:
    shutil.rmtree(stack.state / "data", ignore_errors=True)  # each broker: fresh databases
    broker_env, client_flags = broker_up(stack, kind)
    try:
        env = {name: broker_env_for(stack, kind, name) for name in SERVICES}
        procs = start_services(stack, env)
        try:
            base = [
                "--broker", kind, *client_flags,
                "--consul", stack.consul_addr,
                "--state-dir", str(stack.state),
                "--settle", str(profile.orders_settle),
            ]  # fmt: skip
            return order_runs(
                profile, procs, lambda flags: client([*base, *flags], stack, broker_env)
            )
        finally:
            for proc in procs.values():
                stack.stop(proc)
    finally:
        broker_down(stack, kind)


def broker_env_for(stack: Stack, kind: str, service: str) -> dict[str, str]:
    if kind == "nats" or stack.broker_server is None:
        return {}
    return stack.broker_server.env(service)


def client(args: list[str], stack: Stack, env: dict[str, str]) -> dict[str, Any]:
    """``python -m bench.brokers client <args>``: its result line."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.brokers", "client", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stack.log,
        text=True,
        env=python_env(env),
        timeout=600,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT) :])
            return result
    raise RuntimeError(f"the load client gave no result (exit {out.returncode})")


def run(stack: Stack, profile: Profile, report: Report, brokers: Sequence[str]) -> dict[str, Any]:
    rate = profile.orders_rate
    report.describe(
        SECTION,
        "the four real services on each broker (fresh databases); an order is followed from\n"
        "its PlaceOrder call to its final event, read from the broker through the EventBus.",
    )
    raw: dict[str, Any] = {}
    for kind in brokers:
        began = time.monotonic()
        print(f"bench: brokers: {kind} ...", file=sys.stderr, flush=True)
        try:
            r = raw[kind] = one_broker(stack, kind, profile)
        except Exception as exc:  # the other brokers still run; the exit code says it
            traceback.print_exc(file=sys.stderr)
            report.errors[f"{SECTION}: {kind}"] = f"{type(exc).__name__}: {exc}"
            continue
        finally:
            took = time.monotonic() - began
            print(f"bench: brokers: {kind} took {took:.1f} s", file=sys.stderr, flush=True)
        fixed, sat = r["fixed_rate"], r["saturation"]
        rows = [
            ("orders/s to a final state at saturation", sat["final_per_s"], "/s"),
            ("PlaceOrder -> CONFIRMED p50 at saturation", sat["confirm"]["p50_ms"], "ms"),
            ("PlaceOrder -> CONFIRMED p99 at saturation", sat["confirm"]["p99_ms"], "ms"),
            (f"PlaceOrder -> CONFIRMED p50 at {rate:g} orders/s", fixed["confirm"]["p50_ms"], "ms"),
            (f"PlaceOrder -> CONFIRMED p99 at {rate:g} orders/s", fixed["confirm"]["p99_ms"], "ms"),
            ("orders placed (both runs)", fixed["placed"] + sat["placed"], ""),
            ("not final when the run ended", fixed["unfinished"] + sat["unfinished"], ""),
            ("failed PlaceOrder calls", fixed["place_errors"] + sat["place_errors"], ""),
            ("peak RSS of a service process (largest of the 4)", max(r["peak_rss_mib"].values()),
             "MiB"),
        ]  # fmt: skip
        for name, value, unit in rows:
            report.add(SECTION, name, value, unit, column=kind)
    return raw


# --- the load client ------------------------------------------------------------------


async def run_orders(a: argparse.Namespace) -> dict[str, Any]:
    """Orders placed at ``--rate`` (or by ``--concurrency`` callers), each followed to its
    final event through an ``EventBus`` on the broker (a consumer group of its own)."""
    from devstack.signer import identity_config
    from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
    from meshkit.events.brokers import connect_bus
    from meshkit.events.bus import Delivery
    from meshkit.events.envelopes import event_type
    from meshkit.mesh import open_mesh
    from shop.events.v1 import events_pb2

    events = FinalEvents()

    async def on_final(batch: Sequence[Delivery]) -> None:
        now = time.perf_counter()
        for d in batch:
            events.reached(d.data, now)
            await d.ack()

    bus = await connect_bus(
        MeshConfig(
            name="bench",
            broker=a.broker,
            broker_url=a.broker_url or "",
            nats_url=a.nats or "nats://127.0.0.1:4222",
            nats_creds=a.nats_creds,
            policy=MeshPolicy.load(DEFAULT_MESH_FILE),
        )
    )
    subjects = [event_type(events_pb2.OrderConfirmed), event_type(events_pb2.OrderCancelled)]
    group = f"bench-{uuid.uuid4().hex[:8]}"
    follower = asyncio.create_task(bus.consume(group, subjects, on_final))
    for _ in range(600):  # a queue broker's new group gets what follows its subscription
        if await bus.lag(group) is not None:
            break
        await asyncio.sleep(0.1)
    mesh, _ = await open_mesh(identity_config(Path(a.state_dir), a.identity, a.consul))
    try:
        return await measure_orders(mesh, a, events, warmup_pause=1.0)
    finally:
        follower.cancel()
        with contextlib.suppress(BaseException):
            await follower
        await mesh.close()
        await bus.close()


def client_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.brokers client")
    p.add_argument("--broker", required=True, choices=BROKERS)
    p.add_argument("--broker-url", help="where the broker is (not NATS)")
    p.add_argument("--nats", help="NATS's URL (--broker nats)")
    p.add_argument("--nats-creds", type=Path, help="an nkey seed that may consume (NATS)")
    p.add_argument("--consul", required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--identity", default="operator")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--total", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=60.0)
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s client %(name)s: %(message)s"
    )
    result = asyncio.run(run_orders(a))
    print(RESULT + json.dumps(result), flush=True)


# --- make bench-brokers ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        client_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.brokers", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny counts: proves the harness")
    p.add_argument("--brokers", default=",".join(BROKERS), help="e.g. nats,kafka")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument("--keep-state", action="store_true", help="keep the logs and state dir")
    a = p.parse_args(argv)
    brokers = [b.strip() for b in a.brokers.split(",") if b.strip()]
    unknown = [b for b in brokers if b not in BROKERS]
    if unknown:
        p.error(f"--brokers: unknown {unknown}; there are {list(BROKERS)}")
    profile = PROFILES["quick" if a.quick else "full"]
    report = Report(profile.name, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-brokers"))
    machine = machine_info()
    print(
        f"meshkit-shop bench, brokers ({profile.name}): {machine['cpus']} CPUs, load average"
        f" {machine['load_avg'][0]:.2f} at start; {', '.join(brokers)}",
        flush=True,
    )
    t0 = time.monotonic()
    with Stack(keep=a.keep_state) as stack:
        stack.start_consul()
        report.raw["brokers"] = run(stack, profile, report, brokers)
        if a.keep_state:
            print(f"bench: state kept in {stack.state}", file=sys.stderr)
    finish(report, a.out, machine, t0)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
