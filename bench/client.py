"""The Python load client: grpc.aio calls from a process of its own, as a service would make
them, with latencies measured per call.

    python -m bench.client unary --kind insecure|tls|mesh ...   GetStock, closed loop or paced
    python -m bench.client deadline ...                           one call; the hops' time left
    python -m bench.client orders ...                             PlaceOrder through the saga
    python -m bench.client orders --ghz '[...]' ...               ghz places, the client follows

``--kind mesh`` opens the mesh as the identity ``--identity`` (Consul-resolved round-robin
channel, the client interceptors); ``tls`` is a plain secure channel with a leaf from
``--certs``; ``insecure`` a plain channel. With ``--handshake`` the client warms up, prints
``BENCH_WARM {}``, and waits for a line on stdin before the measured run, so the caller can
read the server's CPU counters in between. The result is one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.servers import DEADLINE_SKU, SKU, TRAILER
from bench.stats import summarize
from meshkit.security.certificates import authority
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc

RESULT = "BENCH_RESULT "
WARM = "BENCH_WARM "


@dataclass
class Calls:
    """What a run saw: latencies of the calls that succeeded, errors by code, failures."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)  # "CODE: message" of the failed
    # (wall-clock start, wall-clock end, code) of failed calls, for the failover scenario.
    failures: list[tuple[float, float, str]] = field(default_factory=list)

    async def timed(self, call: Callable[[], Awaitable[Any]]) -> None:
        wall = time.time()
        start = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as err:
            self.errors[err.code().name] += 1
            self.details[f"{err.code().name}: {err.details()}"[:200]] += 1
            if len(self.failures) < 100_000:
                self.failures.append((wall, time.time(), err.code().name))
        else:
            self.latencies_ms.append((time.perf_counter() - start) * 1000.0)

    def result(self, elapsed: float, cpu: float) -> dict[str, Any]:
        """``elapsed`` wall-clock and ``cpu`` (this process's) seconds of the run."""
        ok = len(self.latencies_ms)
        failed = sum(self.errors.values())
        return {
            "count": ok + failed,
            "ok": ok,
            "errors": failed,
            "error_codes": dict(self.errors),
            "error_details": dict(self.details.most_common(5)),
            "elapsed_s": elapsed,
            "qps": ok / elapsed if elapsed > 0 else 0.0,
            "client_cpu_us_per_call": cpu / ok * 1e6 if ok else math.nan,
            **summarize(self.latencies_ms),
        }


@contextlib.asynccontextmanager
async def inventory_stub(a: argparse.Namespace) -> AsyncIterator[Any]:
    """An InventoryService stub of the chosen kind; closed on exit."""
    if a.kind == "mesh":
        from devstack.signer import identity_config
        from meshkit.mesh import open_mesh

        mesh, _ = await open_mesh(identity_config(Path(a.state_dir), a.identity, a.consul))
        try:
            stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, a.service)
            await wait_instances(mesh, a.service, a.instances)
            yield stub
        finally:
            await mesh.close()
        return
    if a.kind == "tls":
        creds = grpc.ssl_channel_credentials(
            (a.certs / "ca.pem").read_bytes(),
            (a.certs / "key.pem").read_bytes(),
            (a.certs / "cert.pem").read_bytes(),
        )
        options = [("grpc.ssl_target_name_override", authority(a.service))]
        channel = grpc.aio.secure_channel(a.address, creds, options=options)
    else:
        channel = grpc.aio.insecure_channel(a.address)
    try:
        yield inventory_pb2_grpc.InventoryServiceStub(channel)
    finally:
        await channel.close()


async def wait_instances(mesh: Any, service: str, count: int, timeout: float = 20.0) -> None:
    """Until discovery knows ``count`` healthy instances of ``service``."""
    watch = mesh.discovery.watch(service)
    deadline = time.monotonic() + timeout
    while len(watch.value or ()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service}: fewer than {count} instances in Consul")
        await asyncio.sleep(0.05)


async def closed_loop(call: Callable[[], Awaitable[Any]], concurrency: int, total: int) -> Calls:
    """``concurrency`` callers, each making its next call as soon as the last one returns."""
    calls = Calls()
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await calls.timed(call)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return calls


async def paced(
    call: Callable[[], Awaitable[Any]], rate: float, duration: float, concurrency: int
) -> Calls:
    """Calls started at ``rate`` per second for ``duration`` seconds, at most
    ``concurrency`` at a time (as ghz ``--rps`` does): a server that cannot keep up gets a
    queue of that depth, and the run a lower rate, rather than an unbounded backlog (which
    gRPC answers with CANCELLED calls)."""
    calls = Calls()
    total = max(1, round(rate * duration))
    in_flight = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            await calls.timed(call)
        finally:
            in_flight.release()

    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await in_flight.acquire()
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return calls


async def handshake(a: argparse.Namespace) -> None:
    """Tell the caller the warm-up is done; wait for its go (it reads the server's CPU)."""
    if a.handshake:
        print(WARM + "{}", flush=True)
        await asyncio.to_thread(sys.stdin.readline)


async def run_unary(a: argparse.Namespace) -> dict[str, Any]:
    request = inventory_pb2.GetStockRequest(sku=SKU)
    async with inventory_stub(a) as stub:

        def call() -> Awaitable[Any]:
            return stub.GetStock(request, timeout=a.timeout)

        if a.warmup:
            await closed_loop(call, a.concurrency, a.warmup)
        await handshake(a)
        start, cpu = time.perf_counter(), time.process_time()
        if a.rate:
            calls = await paced(call, a.rate, a.duration, a.concurrency)
        else:
            calls = await closed_loop(call, a.concurrency, a.total)
        result = calls.result(time.perf_counter() - start, time.process_time() - cpu)
        if a.failures:
            result["failures"] = calls.failures
        return result


async def run_deadline(a: argparse.Namespace) -> dict[str, Any]:
    """The time each hop had left of a call made with ``--timeout``, in milliseconds."""
    async with inventory_stub(a) as stub:
        call = stub.GetStock(inventory_pb2.GetStockRequest(sku=DEADLINE_SKU), timeout=a.timeout)
        await call
        trailers = await call.trailing_metadata()
    left = {k.removeprefix(TRAILER): int(v) / 1000.0 for k, v in trailers if k.startswith(TRAILER)}
    return {"timeout_ms": a.timeout * 1000.0, "left_ms": left}


# --- the order flow -------------------------------------------------------------------


def place_order_request(customer: str) -> Any:
    from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
    from shop.order.v1 import order_pb2

    return order_pb2.PlaceOrderRequest(
        customer_id=customer,
        items=[
            line_item_pb2.LineItem(
                sku=SKU, quantity=1, unit_price=money_pb2.Money(currency_code="EUR", units=10)
            )
        ],
        shipping_address=address_pb2.Address(
            recipient="Bench Mark", lines=["Loopback 1"], city="Berlin", postal_code="10115",
            country_code="DE",
        ),
        payment_token="tok_visa",
        idempotency_key=str(uuid.uuid4()),
    )  # fmt: skip


@dataclass
class FinalEvents:
    """The orders placed and the final event each reached, as a follower sees them."""

    final: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (when, outcome)
    placed: dict[str, float] = field(default_factory=dict)  # id -> when its PlaceOrder started
    waiting: set[str] = field(default_factory=set)  # placed, not final yet
    all_placed: asyncio.Event = field(default_factory=asyncio.Event)
    all_final: asyncio.Event = field(default_factory=asyncio.Event)
    # Orders placed by ghz: their ids are not known, only how many; all final once that
    # many final events were seen.
    expected: int | None = None

    def reached(self, data: bytes, when: float) -> None:
        """An OrderConfirmed/OrderCancelled envelope (``data``) seen at ``when``."""
        from shop.events.v1 import envelope_pb2

        envelope = envelope_pb2.EventEnvelope.FromString(data)
        outcome = envelope.event_type.rsplit(".", 1)[-1]
        self.final.setdefault(envelope.correlation_id, (when, outcome))
        self.waiting.discard(envelope.correlation_id)
        self._check()

    def expect(self, count: int) -> None:
        self.expected = count
        self.all_placed.set()
        self._check()

    def _check(self) -> None:
        done = not self.waiting if self.expected is None else len(self.final) >= self.expected
        if self.all_placed.is_set() and done:
            self.all_final.set()


async def measure_orders(
    mesh: Any, a: argparse.Namespace, events: FinalEvents, warmup_pause: float
) -> dict[str, Any]:
    """Orders placed through ``mesh`` at ``--rate`` (or by ``--concurrency`` callers), then
    up to ``--settle`` s for their final events (fed to ``events`` by the caller's follower):
    the PlaceOrder calls' latencies, the outcomes, PlaceOrder -> CONFIRMED."""
    from shop.order.v1 import order_pb2_grpc

    stub = mesh.stub(order_pb2_grpc.OrderServiceStub, "order")
    await wait_instances(mesh, "order", 1)
    customer = f"bench-{uuid.uuid4().hex[:8]}"
    placed, final = events.placed, events.final

    async def place() -> None:
        started = time.perf_counter()
        response = await stub.PlaceOrder(place_order_request(customer), timeout=a.timeout)
        order_id = response.order.order_id
        placed[order_id] = started
        if order_id not in final:
            events.waiting.add(order_id)

    if a.warmup:
        await closed_loop(place, 4, a.warmup)
        await asyncio.sleep(warmup_pause)  # the warm-up's orders settle
    placed.clear()
    events.waiting.clear()
    start, cpu = time.perf_counter(), time.process_time()
    if a.rate:
        calls = await paced(place, a.rate, a.duration, a.concurrency)
    else:
        calls = await closed_loop(place, a.concurrency, a.total)
    placing = time.perf_counter() - start
    events.all_placed.set()
    if events.waiting:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(events.all_final.wait(), a.settle)
    mine = {o: final[o] for o in placed if o in final}
    to_confirmed = [
        (t - placed[o]) * 1000.0 for o, (t, outcome) in mine.items() if outcome == "OrderConfirmed"
    ]
    result = calls.result(placing, time.process_time() - cpu)
    return order_figures(len(placed), result, mine, start, to_confirmed)


def order_figures(
    placed: int,
    calls: dict[str, Any],
    final: dict[str, tuple[float, str]],
    start: float,
    to_confirmed: list[float],
) -> dict[str, Any]:
    """The figures of a run that placed ``placed`` orders from ``start``: its PlaceOrder
    calls (``calls``: ok, errors, qps, percentiles), the final event each of them reached
    (``final``: id -> (when, outcome)) and the PlaceOrder -> CONFIRMED times known."""
    ends = [t for t, _ in final.values()]
    span = (max(ends) - start) if ends else 0.0
    outcomes = Counter(outcome for _, outcome in final.values())
    return {
        "placed": placed,
        "place_errors": calls["errors"],
        "place_error_codes": calls["error_codes"],
        "place_qps": calls["qps"],
        "place_p50_ms": calls["p50_ms"],
        "place_p99_ms": calls["p99_ms"],
        "final": len(final),
        "confirmed": outcomes.get("OrderConfirmed", 0),
        "cancelled": outcomes.get("OrderCancelled", 0),
        "unfinished": placed - len(final),
        "final_per_s": len(final) / span if span > 0 else 0.0,
        "span_s": span,
        "confirm": summarize(to_confirmed),
    }


async def placed_by_ghz(cmd: list[str], events: FinalEvents, settle: float) -> dict[str, Any]:
    """Orders placed by ghz (``cmd``: its command line), followed to their final events.

    ghz spends a small part of the CPU this client would, on a machine the services
    share. Its orders' ids are not known here: every final event seen from its start is
    one of them (the caller places no other order meanwhile). Their PlaceOrder -> CONFIRMED
    times are not known either (the fixed-rate run measures those)."""
    from bench.load import ghz_report

    events.final.clear()
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    placing = time.perf_counter() - start
    calls = ghz_report(proc.returncode or 0, out.decode(), err.decode())
    events.expect(calls["ok"])
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(events.all_final.wait(), settle)
    # Its QPS over the whole run, as the Python client's is.
    calls = {**calls, "qps": calls["ok"] / placing if placing > 0 else 0.0}
    return {**order_figures(calls["ok"], calls, events.final, start, []), "placed_by": "ghz"}


async def run_orders(a: argparse.Namespace) -> dict[str, Any]:
    """Orders placed at ``--rate`` (or by ``--concurrency`` callers), each followed to its
    final state by the saga's own final events on the broker (a plain NATS subscription:
    the services do no extra work for it)."""
    import nats

    from devstack.signer import identity_config
    from meshkit.events.nats import credential_options
    from meshkit.mesh import open_mesh

    events = FinalEvents()

    async def on_final(msg: Any) -> None:
        events.reached(msg.data, time.perf_counter())

    nc = await nats.connect(a.nats, **credential_options(a.nats_creds, "observer"))
    await nc.subscribe("shop.events.v1.OrderConfirmed", cb=on_final)
    await nc.subscribe("shop.events.v1.OrderCancelled", cb=on_final)
    try:
        if a.ghz:
            return await placed_by_ghz(json.loads(a.ghz), events, a.settle)
        mesh, _ = await open_mesh(identity_config(Path(a.state_dir), a.identity, a.consul))
        try:
            return await measure_orders(mesh, a, events, warmup_pause=0.5)
        finally:
            await mesh.close()
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__)
    p.add_argument("scenario", choices=["unary", "deadline", "orders"])
    p.add_argument("--kind", choices=["insecure", "tls", "mesh"], default="mesh")
    p.add_argument("--address", help="insecure/tls: host:port")
    p.add_argument("--certs", type=Path, help="tls: key.pem, cert.pem, ca.pem")
    p.add_argument("--consul", help="mesh: Consul's HTTP address")
    p.add_argument("--state-dir", type=Path, help="mesh: the mesh's state (its CA)")
    p.add_argument("--identity", default="operator", help="mesh: who the client is")
    p.add_argument("--service", default="inventory", help="the service called (its name)")
    p.add_argument("--instances", type=int, default=1, help="mesh: instances to wait for")
    p.add_argument("--nats", help="orders: the broker, for the final events")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--total", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0, help="calls per second (paced run)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of a paced run")
    p.add_argument("--timeout", type=float, default=5.0, help="each call's deadline, seconds")
    p.add_argument("--settle", type=float, default=60.0, help="orders: wait for final states")
    p.add_argument("--failures", action="store_true", help="unary: list each failed call")
    p.add_argument(
        "--nats-creds", type=Path, help="orders: the nkey seed of an identity that may read them"
    )
    p.add_argument(
        "--ghz", help="orders: ghz's command line (JSON) places them; this client only follows"
    )
    p.add_argument("--handshake", action="store_true")
    a = p.parse_args(argv)
    # The runtime's own lines (discovery changes, ...) go to stderr: the run's log.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s client %(name)s: %(message)s"
    )
    run = {"unary": run_unary, "deadline": run_deadline, "orders": run_orders}[a.scenario]
    result = asyncio.run(run(a))
    print(RESULT + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
