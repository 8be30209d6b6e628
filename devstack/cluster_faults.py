"""Named faults in a cluster (devstack/cluster.py), each during a burst of orders.

``make cluster-fault SCENARIO=<name>`` (``python -m devstack.cluster_faults <name>``)
brings a cluster of its own up, runs a burst of ``--orders`` orders (500) at ``--rate`` a
second, injects the fault while it runs, and reports: how long the cluster and the orders
took to recover, and the invariants over the four databases. The tests
(tests/cluster/test_cluster_faults.py) run the same scenarios on one cluster.

- ``consul-leader``: SIGKILL the Consul server that leads Raft; once another leads, it is
  started again (its data directory: it rejoins as a follower).
- ``nats-stream-leader``: SIGKILL the NATS server that leads the event stream; once the
  stream has another leader, it is started again (its store: it catches up).
- ``kill-instances``: SIGKILL one instance of each service in turn (inventory, payment,
  shipping, order, gateway), each replaced on its node by a new one, as an orchestrator
  would, before the next.
- ``node-restart``: a power cut of ``node-1``, the node with the most instances (its
  instances, its NATS server and its Consul agent SIGKILLed), and its boot a moment later.

The burst places each order until it is placed (the same idempotency key on every
attempt; ``RETRYABLE`` statuses), one in four through a gateway instance (REST, a token
from Hydra; the instances found passing in Consul, as a load balancer would), the rest
through the mesh to the order service. Each attempt is recorded, so the report gives the
time until placing succeeds again; the orders' own create and final times (the order
service's database) give the time until orders complete normally again. Then every
order of the burst must be final exactly once: none lost (a key without a final order),
none applied twice (two orders for one key, two captures or two shipments for one order),
and the invariants of ``devstack.orders`` hold for every order of the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx

from devstack.cluster import GATEWAY, READY_TIMEOUT, Cluster, Instance, spawned
from devstack.load_driver import Call, Load, drive
from devstack.orders import Orders, check_invariants, open_db, order_request, settle
from devstack.tools import ROOT
from meshkit.mesh import open_mesh

ORDERS = 500
RATE = 20.0  # orders started a second: 500 in 25 s, which a loaded 2-core machine keeps up with
MAX_IN_FLIGHT = 64
PATIENCE = 120.0  # seconds an order is retried before it counts as not placed (lost)
SKUS = ("SKU-CABLE", "SKU-MOUSE", "SKU-KEYBOARD")
CATALOG = {sku: 1_000_000 for sku in (*SKUS, "SKU-MONITOR", "SKU-LAPTOP")}
RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "UNKNOWN"}
GATEWAY_EVERY = 4  # one order in four through a gateway
NODE_DOWN = 2.0  # seconds a restarted node stays off
KILL_EVERY = 3.0  # seconds between the kills of kill-instances
WAIT = 120.0  # seconds a fault's recovery may take before the scenario gives up


class Marks:
    """The instants of a burst: monotonic (the load's clock) and wall (the databases')."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.wall: dict[str, float] = {}

    def __call__(self, name: str) -> float:
        self.wall[name] = time.time()
        return self.load.mark(name)


async def until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """``check()`` (blocking: run in a thread) once truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if value := await asyncio.to_thread(check):
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.1)


# --- the scenarios --------------------------------------------------------------------

Inject = Callable[[Cluster, Marks], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Inject
    starts_at: float = 0.5  # of the burst's length


async def kill_consul_leader(cluster: Cluster, mark: Marks) -> dict[str, float]:
    leader = await until(cluster.consul_leader, "a Consul leader")
    t0 = mark(f"SIGKILL {leader.node} (Raft leader)")
    await asyncio.to_thread(leader.kill)
    new = await until(lambda: (a := cluster.consul_leader()) not in (None, leader) and a, "leader")
    elected = time.monotonic() - t0
    mark(f"{new.node} leads")
    await asyncio.to_thread(cluster.restart, leader)
    await until(cluster.consul_whole, "Raft whole again")
    return {"new Consul leader after": elected, "Raft whole again after": time.monotonic() - t0}


async def kill_stream_leader(cluster: Cluster, mark: Marks) -> dict[str, float]:
    state = await until(lambda: cluster.stream_state().leader and cluster.stream_state(), "leader")
    node = cluster.nats_node(state.leader)
    t0 = mark(f"SIGKILL {state.leader} (stream leader)")
    await asyncio.to_thread(node.nats.kill)
    new = await until(
        lambda: (s := cluster.stream_state().leader) not in ("", state.leader) and s, "leader"
    )
    elected = time.monotonic() - t0
    mark(f"{new} leads the stream")
    await asyncio.to_thread(cluster.restart, node.nats)
    await until(cluster.stream_whole, "every replica of the stream current again")
    return {
        "new stream leader after": elected,
        "stream whole again (3 current) after": time.monotonic() - t0,
    }


async def kill_instances(cluster: Cluster, mark: Marks) -> dict[str, float]:
    """One instance of each service SIGKILLed, ``KILL_EVERY`` seconds apart, each replaced
    on its node at once (a new process, as an orchestrator starts one); the time until
    each service's set is whole again (the dead one out of Consul's passing instances,
    the new one in)."""
    figures: dict[str, float] = {}

    async def replaced(victim: Instance, dead: str, t0: float) -> None:
        assert victim.proc is not None
        try:
            await asyncio.to_thread(victim.proc.wait_ready, READY_TIMEOUT)
        except RuntimeError:  # it died starting (Instance.start): once more
            await asyncio.to_thread(cluster.restart_instance, victim)
        s = victim.service
        await until(lambda: dead not in cluster.passing(s), f"{dead} out of Consul")
        await until(lambda: cluster.service_whole(s), f"{s} whole again")
        figures[f"{s}: whole again after"] = time.monotonic() - t0

    waits = []
    for service in cluster.services:
        victim = next(i for i in cluster.instances(service) if i.running)
        dead = victim.id
        t0 = mark(f"SIGKILL {dead} ({victim.node.name})")
        assert victim.proc is not None
        await asyncio.to_thread(victim.proc.kill)
        await asyncio.to_thread(spawned, victim.launch)  # its replacement, on the same node
        waits.append(asyncio.create_task(replaced(victim, dead, t0)))
        await asyncio.sleep(KILL_EVERY)
    await asyncio.gather(*waits)
    return figures


async def restart_node(cluster: Cluster, mark: Marks) -> dict[str, float]:
    node = max(cluster.nodes, key=lambda n: len(n.instances))
    t0 = mark(f"power cut of {node.name}")
    await asyncio.to_thread(cluster.kill_node, node)
    await asyncio.sleep(NODE_DOWN)
    mark(f"{node.name} boots")
    await asyncio.to_thread(cluster.start_node, node)
    booted = time.monotonic() - t0
    await until(cluster.instances_whole, "every instance passing again")
    whole = time.monotonic() - t0
    await until(cluster.stream_whole, "every replica of the stream current again")
    return {
        f"{node.name} booted (agent, NATS, instances ready) after": booted,
        "every instance passing again after": whole,
        "stream whole again after": time.monotonic() - t0,
    }


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "consul-leader",
            "SIGKILL the Consul server leading Raft; started again once another leads",
            kill_consul_leader,
        ),
        Scenario(
            "nats-stream-leader",
            "SIGKILL the NATS server leading the event stream; started again once another leads",
            kill_stream_leader,
        ),
        Scenario(
            "kill-instances",
            f"SIGKILL one instance of each service in turn ({KILL_EVERY:g} s apart),"
            " each replaced on its node",
            kill_instances,
            starts_at=0.2,  # five kills, KILL_EVERY seconds apart: all within the burst
        ),
        Scenario(
            "node-restart",
            f"a power cut of the node with the most instances, booted {NODE_DOWN:g} s later",
            restart_node,
        ),
    )
}


# --- the burst --------------------------------------------------------------------------


class Gateways:
    """The gateway instances passing in Consul (refreshed each second), tried in turn."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.urls: list[str] = []
        self.found = 0.0
        self.turn = 0

    def _find(self) -> list[str]:
        consul = self.cluster.consul  # as the operator: its token reads the catalog
        path = f"/v1/health/service/{GATEWAY}?passing=1"
        entries = consul.get(path, token=consul.service_token("operator"))
        assert isinstance(entries, list)
        return [f"http://{e['Service']['Address']}:{e['Service']['Port']}" for e in entries]

    async def pick(self) -> str | None:
        if time.monotonic() - self.found > 1.0:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                self.urls = await asyncio.to_thread(self._find)
            self.found = time.monotonic()
        if not self.urls:
            return None
        self.turn += 1
        return self.urls[self.turn % len(self.urls)]


class Burst:
    """``place(i)``: order ``i`` placed, retried with its key until it is; attempts logged."""

    def __init__(
        self, cluster: Cluster, orders: Orders, http: httpx.AsyncClient, token: str
    ) -> None:
        self.cluster, self.orders, self.http, self.token = cluster, orders, http, token
        self.tag = f"burst-{uuid.uuid4().hex[:8]}"
        self.attempts = Load()
        self.gateways = Gateways(cluster)

    def request(self, i: int) -> Any:
        card = "tok_decline" if i % 10 == 9 else "tok_visa"  # compensations run too
        request = order_request((SKUS[i % len(SKUS)], 1), token=card, customer=f"c-{i % 7}")
        request.idempotency_key = f"{self.tag}-{i}"
        return request

    async def place(self, i: int) -> str | None:
        request = self.request(i)
        rest = bool(self.token) and i % GATEWAY_EVERY == GATEWAY_EVERY - 1
        deadline = time.monotonic() + PATIENCE
        pause = 0.2
        while True:
            started = time.monotonic()
            status, result, retry = await (self._rest(request) if rest else self._grpc(request))
            self.attempts.calls.append(Call(started, time.monotonic(), status, result))
            if status == "OK":
                return str(result)
            if not retry or time.monotonic() > deadline:
                return None
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)

    async def _grpc(self, request: Any) -> tuple[str, str, bool]:
        try:
            response = await self.orders.stub.PlaceOrder(request, timeout=10)
        except grpc.aio.AioRpcError as err:
            return err.code().name, err.details() or "", err.code().name in RETRYABLE
        return "OK", response.order.order_id, False

    async def _rest(self, request: Any) -> tuple[str, str, bool]:
        url = await self.gateways.pick()
        if url is None:
            return "NO_GATEWAY", "no gateway passing in Consul", True
        body = {  # no customer: the token's subject is the customer through the edge
            "idempotencyKey": request.idempotency_key,
            "paymentToken": request.payment_token,
            "items": [
                {
                    "sku": it.sku,
                    "quantity": it.quantity,
                    "unitPrice": {"currencyCode": "EUR", "units": str(it.unit_price.units)},
                }
                for it in request.items
            ],
            "shippingAddress": {
                "recipient": request.shipping_address.recipient,
                "lines": list(request.shipping_address.lines),
                "city": request.shipping_address.city,
                "postalCode": request.shipping_address.postal_code,
                "countryCode": request.shipping_address.country_code,
            },
        }
        try:
            response = await self.http.post(
                f"{url}/v1/orders",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
        except httpx.HTTPError as err:
            return f"HTTP:{type(err).__name__}", str(err), True
        if response.status_code == 200:
            return "OK", str(response.json()["order"]["orderId"]), False
        retry = response.status_code in (429, 502, 503, 504)
        return f"HTTP {response.status_code}", response.text[:200], retry


# --- the report -------------------------------------------------------------------------


@dataclass
class FaultReport:
    """What one scenario's burst saw; ``ok`` when every invariant holds."""

    scenario: str
    orders: int
    rate: float
    placed_in: float = 0.0
    final_in: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    via_gateway: int = 0
    placing_again_after: float | None = 0.0
    recovery: dict[str, float] = field(default_factory=dict)
    completion: dict[str, float | int | None] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  # seconds into the burst
    lost: list[str] = field(default_factory=list)
    not_final: list[str] = field(default_factory=list)
    double_applied: list[str] = field(default_factory=list)
    invariants: str = ""  # "" when they hold, else the failure
    cluster_totals: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.not_final or self.double_applied or self.invariants)

    def lines(self) -> list[str]:
        s = SCENARIOS[self.scenario]
        c = self.completion
        confirmed = self.outcomes.get("CONFIRMED", 0)
        out = [
            f"scenario {self.scenario}: {s.summary}",
            f"  burst: {self.orders} orders at {self.rate:g}/s ({self.via_gateway} through a"
            f" gateway), placed in {self.placed_in:.1f} s, all final {self.final_in:.1f} s"
            f" after the first: {dict(self.outcomes)}",
            f"  throughput: {c.get('orders_per_s', 0):.1f} orders/s completed;"
            f" order latency p50 {c.get('p50_s', 0):.2f} s, p95 {c.get('p95_s', 0):.2f} s,"
            f" max {c.get('max_s', 0):.2f} s",
            "  faults: " + ", ".join(f"{n} at +{t:.1f} s" for n, t in self.marks.items()),
            f"  placing: {sum(self.attempts.values())} attempts {self.attempts};"
            f" succeeds again {_secs(self.placing_again_after, after=' after the fault')}",
            f"  orders: {c.get('slowed', 0)} slowed past {c.get('threshold_s', 0):.2f} s, the last"
            f" of them final {c.get('drained_s', 0):.2f} s after the fault; complete normally"
            f" again {_secs(c.get('normal_again_s'), 'not within the burst', ' after the fault')}",
        ]
        out += [f"  recovery: {name} {secs:.2f} s" for name, secs in self.recovery.items()]
        verdict = "hold" if self.ok else "FAIL"
        out.append(
            f"  invariants {verdict}: {confirmed} confirmed of {self.orders}; lost"
            f" {len(self.lost)}, not final {len(self.not_final)}, double-applied"
            f" {len(self.double_applied)}; over the whole cluster (stock sold = confirmed,"
            f" one capture per confirmed order, nothing reserved):"
            f" {self.invariants or 'ok ' + str(self.cluster_totals)}"
        )
        for what, ids in (
            ("lost", self.lost),
            ("not final", self.not_final),
            ("double-applied", self.double_applied),
        ):
            if ids:
                out.append(f"    {what}: {ids[:10]}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"ok": self.ok}


def _secs(value: float | int | None, none: str = "never", after: str = "") -> str:
    return none if value is None else f"{value:.2f} s{after}"


def account(state: Path, tag: str, count: int) -> dict[str, Any]:
    """The burst's orders in the databases: by key, their status and times; what was lost
    or applied twice."""
    with open_db(state, "order") as odb:
        rows = odb.execute(
            "SELECT k.key, k.order_id, s.status, s.create_time, s.update_time"
            " FROM order_idempotency_keys k JOIN order_state s USING (order_id)"
            " WHERE k.key LIKE ?",
            (f"{tag}-%",),
        ).fetchall()
    ids = {r["order_id"] for r in rows}
    with open_db(state, "payment") as pdb:
        payments = Counter(r["order_id"] for r in pdb.execute("SELECT order_id FROM payments"))
    with open_db(state, "shipping") as sdb:
        shipments = Counter(r["order_id"] for r in sdb.execute("SELECT order_id FROM shipments"))
    with open_db(state, "inventory") as idb:
        reservations = Counter(
            r["order_id"] for r in idb.execute("SELECT order_id FROM reservations")
        )
    by_key = Counter(r["key"] for r in rows)
    final = {"CONFIRMED", "CANCELLED"}
    lost = [f"{tag}-{i}" for i in range(count) if f"{tag}-{i}" not in by_key]
    not_final = [r["order_id"] for r in rows if r["status"] not in final]
    double = [k for k, n in by_key.items() if n > 1] + [
        f"{what} x{n}: {oid}"
        for what, counter in (
            ("payment", payments),
            ("shipment", shipments),
            ("reservation", reservations),
        )
        for oid, n in counter.items()
        if oid in ids and n > 1
    ]
    times = [
        (r["create_time"] / 1e6, r["update_time"] / 1e6, r["status"])
        for r in rows
        if r["status"] in final
    ]
    return {"lost": lost, "not_final": not_final, "double": double, "times": times}


def completion_figures(
    times: list[tuple[float, float, str]], fault_wall: float
) -> dict[str, float | int | None]:
    """Throughput and latency of the burst's orders, and when they complete normally again:
    an order is slowed when its latency exceeds twice the p95 of those final before the
    fault (at least that p95 + 1 s); orders complete normally again from the first order
    placed after the last slowed one (its completion, from the fault)."""
    if not times:
        return {}
    latencies = sorted(u - c for c, u, _ in times)
    before = sorted(u - c for c, u, _ in times if u < fault_wall) or [1.0]
    p95_before = before[int(0.95 * (len(before) - 1))]
    threshold = max(2 * p95_before, p95_before + 1.0)
    slowed = [(c, u) for c, u, _ in times if u >= fault_wall and u - c > threshold]
    normal_again: float | None = 0.0
    drained = 0.0
    if slowed:
        last = max(c for c, _ in slowed)
        later = [u for c, u, _ in times if c > last]
        normal_again = max(0.0, min(later) - fault_wall) if later else None
        drained = max(u for _, u in slowed) - fault_wall
    first, last_final = min(c for c, _, _ in times), max(u for _, u, _ in times)
    return {
        "orders_per_s": len(times) / (last_final - first) if last_final > first else 0.0,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))],
        "max_s": latencies[-1],
        "threshold_s": threshold,
        "slowed": len(slowed),
        "normal_again_s": normal_again,
        "drained_s": drained,
        "final_span_s": last_final - first,
    }


# --- running a scenario -----------------------------------------------------------------


async def run_scenario(
    cluster: Cluster,
    name: str,
    *,
    orders: int = ORDERS,
    rate: float = RATE,
    out: Callable[[str], None] = print,
) -> FaultReport:
    """The burst on ``cluster``, the scenario ``name`` injected while it runs, the
    cluster whole again afterwards, and the report (``report.ok``: the invariants hold)."""
    if name not in SCENARIOS:
        raise LookupError(f"no cluster fault scenario {name!r} (there are: {', '.join(SCENARIOS)})")
    if orders < 10 or rate <= 0:
        raise ValueError("orders must be >= 10 and rate > 0")
    scenario = SCENARIOS[name]
    mesh, _ = await open_mesh(cluster.mesh_config("operator"))
    try:
        client = Orders(mesh)
        await mesh.discovery.ready(timeout=60)
        await client.reachable(timeout=60)
        async with httpx.AsyncClient() as http:
            token = await asyncio.to_thread(cluster.access_token) if cluster.hydra else ""
            burst = Burst(cluster, client, http, token)
            load = Load()
            mark = Marks(load)
            out(f"{name}: a burst of {orders} orders at {rate:g}/s; the fault at"
                f" {scenario.starts_at:.0%} of it")  # fmt: skip

            async def fault() -> dict[str, float]:
                await asyncio.sleep(scenario.starts_at * orders / rate)
                return await scenario.inject(cluster, mark)

            driving = asyncio.create_task(
                drive(burst.place, rate=rate, duration=orders / rate, load=load,
                      max_in_flight=MAX_IN_FLIGHT)
            )  # fmt: skip
            try:
                recovery = await fault()
            except BaseException:
                driving.cancel()
                await asyncio.gather(driving, return_exceptions=True)
                raise
            await driving
        placed = [c.result for c in load.calls if c.result]
        out(f"{name}: {len(placed)} of {orders} placed; waiting until every one is final ...")
        await settle(client, placed, timeout=PATIENCE)
        await asyncio.to_thread(cluster.wait_whole)
        report = FaultReport(name, orders, rate, recovery=recovery)
        report.placed_in = max(c.ended for c in load.calls) - load.began
        report.attempts = dict(burst.attempts.by_status())
        report.via_gateway = sum(
            1 for i in range(orders) if burst.token and i % GATEWAY_EVERY == GATEWAY_EVERY - 1
        )
        fault_at = min(load.marks.values())
        report.marks = {n: t - load.began for n, t in load.marks.items()}
        report.placing_again_after = burst.attempts.recovery(fault_at)
        try:
            report.cluster_totals = await asyncio.to_thread(
                check_invariants, cluster, 30.0, cluster.catalog
            )
        except AssertionError as err:
            report.invariants = f"FAILED: {err!r}"
        books = await asyncio.to_thread(account, cluster.state, burst.tag, orders)
        report.lost, report.not_final = books["lost"], books["not_final"]
        report.double_applied = books["double"]
        report.outcomes = dict(Counter(s for _, _, s in books["times"]))
        report.completion = completion_figures(books["times"], min(mark.wall.values()))
        report.final_in = float(report.completion.get("final_span_s") or 0.0)
        return report
    finally:
        await mesh.close()


def new_cluster(state: Path, out: Callable[[str], None] = print) -> Cluster:
    """A cluster for the scenarios: stock enough for many bursts."""
    return Cluster(state, catalog=CATALOG, out=out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devstack.cluster_faults", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("scenario", nargs="?", default="list", help="a scenario, or list")
    p.add_argument("--orders", type=int, default=ORDERS, help="orders in the burst")
    p.add_argument("--rate", type=float, default=RATE, help="orders started a second")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=ROOT / ".state" / "cluster-fault",
        help="emptied first; the logs stay there after the run",
    )
    p.add_argument("--json", type=Path, help="also write the report there, as JSON")
    a = p.parse_args(argv)
    if a.scenario == "list" or a.scenario not in SCENARIOS:
        if a.scenario != "list":
            print(f"no scenario {a.scenario!r}; there are:", file=sys.stderr)
        for s in SCENARIOS.values():
            print(f"  {s.name:<20} {s.summary}")
        return 0 if a.scenario == "list" else 2
    # Ctrl-C or SIGTERM: KeyboardInterrupt, and the cluster is stopped on the way out
    # (also when started with SIGINT ignored, as a script's background job is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    marker = a.state_dir / ".cluster-fault"
    if a.state_dir.exists() and any(a.state_dir.iterdir()) and not marker.exists():
        print(f"--state-dir {a.state_dir}: not empty, not a cluster-fault's", file=sys.stderr)
        return 2
    shutil.rmtree(a.state_dir, ignore_errors=True)  # a fresh cluster: no orders of before
    a.state_dir.mkdir(parents=True)
    marker.touch()

    def say(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    with new_cluster(a.state_dir, out=say) as cluster:
        say(f"cluster up in {time.monotonic() - started:.0f} s\n{cluster.summary()}\n")
        report = asyncio.run(run_scenario(cluster, a.scenario, orders=a.orders, rate=a.rate))
        say("\n" + "\n".join(report.lines()))
        if a.json:
            a.json.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
        say(f"\nstopping the cluster (logs were in {cluster.log_dir}) ...")
    return 0 if report.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the cluster is stopped by the with block
        sys.exit(130)
