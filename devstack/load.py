"""``make load``: a steady load of reads, orders and cancels against ``make run``'s stack.

    python -m devstack.load --rate 50 --duration 60 --mix reads:6,orders:3,cancels:1

Calls start at ``--rate`` a second for ``--duration`` seconds (so at most rate x duration
calls), at most ``--concurrency`` at a time: when the stack cannot keep up, the load slows
down instead of piling calls up. Each call is one attempt with a ``--timeout`` deadline.
The kinds, chosen at random in the proportions of ``--mix``:

- ``reads``: GetStock, GetOrder of an order placed by this run, ListOrders of its customer;
- ``orders``: PlaceOrder (one SKU-CABLE or SKU-MOUSE, a card that pays);
- ``cancels``: CancelOrder of the newest order of this run not cancelled yet. An order the
  saga finished first is refused (FAILED_PRECONDITION): counted as "too late", not an
  error; with no order to cancel yet, nothing is called ("skipped").

It finds the services through Consul as the operator (its token in
``<state>/consul/tokens/operator.token``, its certificate from the signer whose URL is in
``<state>/ca/signer.url``; ``meshkit.security.signer.dev_identity``), on loopback only: a
Consul address that is not loopback is refused. Once a second it prints a line: the calls
finished in that second, p50/p99 of those that succeeded, errors by status code, and the
state of each circuit breaker (``mesh_breaker_state{service}`` of this client and of each
instance's /metrics, found in Consul's service meta ``metrics_port``; "-" when there are
none). At the end a summary; with ``--json`` also a ``LOAD_SUMMARY {json}`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from devstack.tools import ROOT

SUMMARY = "LOAD_SUMMARY "
KINDS = ("reads", "orders", "cancels")
DEFAULT_MIX = "reads:6,orders:3,cancels:1"
MAX_RATE = 1000.0  # calls a second: a load for one machine, not a stress test
MAX_DURATION = 3600.0
MAX_CONCURRENCY = 512
BREAKER = {0: "closed", 1: "open", 2: "half-open"}
SKUS = ("SKU-CABLE", "SKU-MOUSE")


def parse_mix(text: str) -> dict[str, int]:
    """``reads:6,orders:3,cancels:1`` -> weights; a kind left out weighs 0."""
    mix = dict.fromkeys(KINDS, 0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.partition(":")
        if kind not in mix:
            raise ValueError(f"unknown kind {kind!r} in the mix (known: {', '.join(KINDS)})")
        try:
            mix[kind] = int(weight) if sep else 1
        except ValueError:
            raise ValueError(f"the weight of {kind} must be an integer, not {weight!r}") from None
        if mix[kind] < 0:
            raise ValueError(f"the weight of {kind} must be >= 0")
    if not any(mix.values()):
        raise ValueError("the mix is empty: give at least one kind a weight > 0")
    return mix


def require_loopback(address: str) -> str:
    """``host:port`` if the host is loopback (127.0.0.0/8, ::1, localhost), else refuse."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not host:
        raise ValueError(f"not host:port: {address!r}")
    if host == "localhost":
        return address
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing a non-loopback Consul address {address!r}: loopback only")
    return address


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


@dataclass
class Tally:
    """What the run saw, in total and since the last live line."""

    ok: Counter[str] = field(default_factory=Counter)  # by kind
    errors: Counter[str] = field(default_factory=Counter)  # by status code
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)  # "CODE: message" of the failed
    latencies_ms: list[float] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)  # order ids, oldest first
    cancelled: int = 0
    too_late: int = 0
    skipped: int = 0
    abandoned: int = 0  # still running when the run's time was up
    # since the last live line
    tick_done: int = 0
    tick_latencies: list[float] = field(default_factory=list)
    tick_errors: Counter[str] = field(default_factory=Counter)

    def succeeded(self, kind: str, latency_ms: float) -> None:
        self.ok[kind] += 1
        self.latencies_ms.append(latency_ms)
        self.tick_done += 1
        self.tick_latencies.append(latency_ms)

    def failed(self, kind: str, code: str, details: str = "") -> None:
        self.errors[code] += 1
        self.details[f"{code}: {details}"[:200]] += 1
        self.errors_by_kind[f"{kind}:{code}"] += 1
        self.tick_done += 1
        self.tick_errors[code] += 1

    def tick(self) -> tuple[int, list[float], Counter[str]]:
        out = (self.tick_done, sorted(self.tick_latencies), self.tick_errors)
        self.tick_done, self.tick_latencies, self.tick_errors = 0, [], Counter()
        return out


class Breakers:
    """The circuit breakers' states: this client's (its mesh's registry) and each service
    instance's (its /metrics, found in Consul's meta), refreshed once a second."""

    def __init__(self, consul: str, token: str, own_registry: Any = None) -> None:
        self.consul, self.token, self.own = consul, token, own_registry
        self.targets: dict[str, int] = {}  # label -> metrics port
        self.found_at = 0.0

    def _get(self, path: str) -> Any:
        req = urllib.request.Request(
            f"http://{self.consul}{path}", headers={"X-Consul-Token": self.token}
        )
        with urllib.request.urlopen(req, timeout=2) as resp:
            return json.loads(resp.read() or b"null")

    def _find(self) -> None:
        targets: dict[str, int] = {}
        for name in sorted(self._get("/v1/catalog/services") or {}):
            entries = self._get(f"/v1/health/service/{name}?passing=1") or []
            for e in entries:
                port = (e["Service"].get("Meta") or {}).get("metrics_port")
                if port and port.isdigit():
                    label = name if len(entries) == 1 else f"{name}#{e['Service']['ID'][-4:]}"
                    targets[label] = int(port)
        self.targets = targets

    def states(self) -> dict[str, str]:
        """``{"order→inventory": "closed", ...}``: whatever breaker gauges exist now."""
        now = time.monotonic()
        if now - self.found_at > 5.0:  # instances come and go (restarts)
            with contextlib.suppress(OSError, ValueError):
                self._find()
            self.found_at = now
        out: dict[str, str] = {}
        for label, port in self.targets.items():
            with contextlib.suppress(OSError, ValueError):
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=0.5) as resp:
                    text = resp.read().decode()
                for family in text_string_to_metric_families(text):
                    out |= _breakers(label, family)
        if self.own is not None:
            for family in self.own.collect():
                out |= _breakers("load", family)
        return dict(sorted(out.items()))


def _breakers(label: str, family: Any) -> dict[str, str]:
    if family.name != "mesh_breaker_state":
        return {}
    return {
        f"{label}→{s.labels.get('service', '?')}": BREAKER.get(int(s.value), str(s.value))
        for s in family.samples
        if s.name == "mesh_breaker_state"
    }


def place_request(customer: str, rng: random.Random) -> Any:
    from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
    from shop.order.v1 import order_pb2

    return order_pb2.PlaceOrderRequest(
        customer_id=customer,
        items=[
            line_item_pb2.LineItem(
                sku=rng.choice(SKUS), quantity=1,
                unit_price=money_pb2.Money(currency_code="EUR", units=3),
            )
        ],
        shipping_address=address_pb2.Address(
            recipient="Load Test", lines=["Loopback 1"], city="Berlin", postal_code="10115",
            country_code="DE",
        ),
        payment_token="tok_visa",
        idempotency_key=f"load-{uuid.uuid4().hex}",
    )  # fmt: skip


class Load:
    """One run: the calls of each kind, paced, and the live lines."""

    def __init__(self, a: argparse.Namespace, mesh: Any, out: Callable[[str], None]) -> None:
        from shop.inventory.v1 import inventory_pb2_grpc
        from shop.order.v1 import order_pb2_grpc

        self.a, self.out = a, out
        self.rng = random.Random(a.seed)
        self.orders = mesh.stub(order_pb2_grpc.OrderServiceStub, "order")
        self.inventory = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
        self.customer = f"load-{uuid.uuid4().hex[:8]}"
        self.tally = Tally()
        self.to_cancel: list[str] = []  # placed, not cancelled (newest last)
        self.reads = 0

    async def _read(self) -> None:
        from shop.inventory.v1 import inventory_pb2
        from shop.order.v1 import order_pb2

        self.reads += 1
        t = self.a.timeout
        placed = self.tally.placed
        if self.reads % 3 == 1 and placed:
            order_id = self.rng.choice(placed[-100:])
            await self.orders.GetOrder(order_pb2.GetOrderRequest(order_id=order_id), timeout=t)
        elif self.reads % 3 == 2:
            request = order_pb2.ListOrdersRequest(customer_id=self.customer, page_size=5)
            await self.orders.ListOrders(request, timeout=t)
        else:
            sku = self.rng.choice(SKUS)
            await self.inventory.GetStock(inventory_pb2.GetStockRequest(sku=sku), timeout=t)

    async def _order(self) -> None:
        request = place_request(self.customer, self.rng)
        response = await self.orders.PlaceOrder(request, timeout=self.a.timeout)
        self.tally.placed.append(response.order.order_id)
        self.to_cancel.append(response.order.order_id)

    async def _cancel(self, order_id: str) -> None:
        from shop.order.v1 import order_pb2

        request = order_pb2.CancelOrderRequest(order_id=order_id, reason="make load")
        await self.orders.CancelOrder(request, timeout=self.a.timeout)

    async def one(self, kind: str) -> None:
        call: Callable[[], Awaitable[None]]
        if kind == "reads":
            call = self._read
        elif kind == "orders":
            call = self._order
        else:
            if not self.to_cancel:
                self.tally.skipped += 1
                return
            order_id = self.to_cancel.pop()

            def call() -> Awaitable[None]:
                return self._cancel(order_id)

        started = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as err:
            code = err.code().name
            if kind == "cancels" and err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                self.tally.too_late += 1  # the saga finished it first: not an error
                self.tally.succeeded(kind, (time.perf_counter() - started) * 1000.0)
                return
            self.tally.failed(kind, code, err.details() or "")
            return
        if kind == "cancels":
            self.tally.cancelled += 1
        self.tally.succeeded(kind, (time.perf_counter() - started) * 1000.0)

    async def run(self, breakers: Breakers | None) -> dict[str, Any]:
        a = self.a
        kinds = [k for k in KINDS if a.mix[k]]
        weights = [a.mix[k] for k in kinds]
        total = max(1, round(a.rate * a.duration))
        in_flight = asyncio.Semaphore(a.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def one(kind: str) -> None:
            try:
                await self.one(kind)
            finally:
                in_flight.release()

        start = time.perf_counter()
        live = asyncio.create_task(self._live(start, breakers))
        end = start + a.duration
        started = 0
        try:
            for i in range(total):
                at = start + i / a.rate
                if at >= end:
                    break
                if (delay := at - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                remaining = end - time.perf_counter()
                if remaining <= 0:
                    break
                try:  # a start waits for a free slot, but never past the run's end
                    await asyncio.wait_for(in_flight.acquire(), remaining)
                except TimeoutError:
                    break
                task = asyncio.create_task(one(self.rng.choices(kinds, weights)[0]))
                started += 1
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:  # the calls in flight end within their deadline (a grace second)
                _, pending = await asyncio.wait(list(tasks), timeout=a.timeout + 1.0)
                for task in pending:
                    task.cancel()
                self.tally.abandoned = len(pending)
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
        finally:
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live
        elapsed = time.perf_counter() - start
        return self.summary(started, elapsed)

    async def _live(self, start: float, breakers: Breakers | None) -> None:
        """A line a second: throughput, p50/p99, errors by code, breaker states."""
        tick = start
        while True:
            tick += 1.0
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            done, lat, errors = self.tally.tick()
            states: dict[str, str] = {}
            if breakers is not None:
                with contextlib.suppress(Exception):
                    states = await asyncio.to_thread(breakers.states)
            errs = " ".join(f"{c}:{n}" for c, n in errors.most_common()) or "0"
            brk = ", ".join(f"{k} {v}" for k, v in states.items()) or "-"
            self.out(
                f"[{tick - start:4.0f}s] {done:4d}/s  p50 {ms(percentile(lat, 0.5)):>9}"
                f"  p99 {ms(percentile(lat, 0.99)):>9}  errors {errs}  breakers {brk}"
            )

    def summary(self, started: int, elapsed: float) -> dict[str, Any]:
        t = self.tally
        lat = sorted(t.latencies_ms)
        ok = sum(t.ok.values())
        return {
            "rate": self.a.rate,
            "duration_s": self.a.duration,
            "elapsed_s": round(elapsed, 3),
            "started": started,
            "ok": ok,
            "errors": sum(t.errors.values()),
            "error_codes": dict(t.errors),
            "errors_by_kind": dict(t.errors_by_kind),
            "error_details": dict(t.details.most_common(5)),
            "by_kind": {k: t.ok.get(k, 0) for k in KINDS},
            "orders_placed": len(t.placed),
            "cancelled": t.cancelled,
            "cancel_too_late": t.too_late,
            "cancel_skipped": t.skipped,
            "abandoned": t.abandoned,
            "throughput_per_s": round(ok / elapsed, 2) if elapsed > 0 else 0.0,
            "p50_ms": percentile(lat, 0.5),
            "p99_ms": percentile(lat, 0.99),
            "customer": self.customer,
        }


def print_summary(s: dict[str, Any], out: Callable[[str], None]) -> None:
    kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items())
    codes = ", ".join(f"{c} {n}" for c, n in s["error_codes"].items()) or "none"
    out(
        f"\nload: {s['started']} calls started in {s['elapsed_s']:.1f} s"
        f" ({s['rate']:g}/s for {s['duration_s']:g} s asked); {s['ok']} ok"
        f" ({s['throughput_per_s']:g}/s), {s['errors']} errors ({codes})"
    )
    out(f"  succeeded: {kinds}; p50 {ms(s['p50_ms'])}, p99 {ms(s['p99_ms'])}")
    for detail, n in s["error_details"].items():
        out(f"  {n} x {detail}")
    out(
        f"  orders placed {s['orders_placed']}, cancelled {s['cancelled']},"
        f" too late to cancel {s['cancel_too_late']}, nothing to cancel {s['cancel_skipped']}"
        f"; still running at the end {s['abandoned']} (customer {s['customer']})"
    )


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    from devstack.signer import identity_config
    from meshkit.mesh import open_mesh

    config = identity_config(a.state_dir, a.identity, a.consul)
    if not config.consul_token or not config.signer_url:
        raise SystemExit(
            f"no {a.identity} identity in {a.state_dir} (its Consul token, the signer's URL):"
            " is `make run` up?"
        )
    try:
        mesh, _ = await open_mesh(config)
    except (TimeoutError, OSError) as err:
        raise SystemExit(
            f"cannot open the mesh through Consul at {a.consul} ({err!r}): is `make run` up?"
        ) from None
    try:
        load = Load(a, mesh, lambda line: print(line, flush=True))  # its stubs watch first
        for service in ("order", "inventory"):
            watch = mesh.discovery.watch(service)
            deadline = time.monotonic() + 20.0
            while not watch.value:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no healthy {service} in Consul at {a.consul}")
                await asyncio.sleep(0.05)
        breakers = Breakers(a.consul, config.consul_token, getattr(mesh.metrics, "registry", None))
        mix = ", ".join(f"{k} {w}" for k, w in a.mix.items() if w)
        print(
            f"load: {a.rate:g} calls/s for {a.duration:g} s ({mix}) as {a.identity},"
            f" at most {a.concurrency} in flight; Consul {a.consul}",
            flush=True,
        )
        return await load.run(breakers if not a.no_breakers else None)
    finally:
        await mesh.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devstack.load", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=20.0, help="calls started a second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"kinds and weights ({DEFAULT_MIX})")
    p.add_argument("--concurrency", type=int, default=64, help="calls in flight at most")
    p.add_argument("--timeout", type=float, default=5.0, help="each call's deadline, seconds")
    p.add_argument("--consul", default="127.0.0.1:8500", help="Consul's HTTP address (loopback)")
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    p.add_argument("--identity", default="operator", help="who the load calls as")
    p.add_argument("--seed", type=int, default=None, help="of the choice of each call's kind")
    p.add_argument("--no-breakers", action="store_true", help="do not read breaker states")
    p.add_argument("--json", action="store_true", help="also a LOAD_SUMMARY {json} line")
    a = p.parse_args(argv)
    try:
        a.mix = parse_mix(a.mix)
        require_loopback(a.consul)
    except ValueError as err:
        p.error(str(err))
    if not 0 < a.rate <= MAX_RATE:
        p.error(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 0 < a.duration <= MAX_DURATION:
        p.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if not 0 < a.concurrency <= MAX_CONCURRENCY:
        p.error(f"--concurrency must be in [1, {MAX_CONCURRENCY}]")
    if not 0 < a.timeout <= 60:
        p.error("--timeout must be in (0, 60]")
    # The mesh's own lines (discovery changes, ...) only when something goes wrong.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = asyncio.run(main_async(a))
    print_summary(summary, lambda line: print(line, flush=True))
    if a.json:
        print(SUMMARY + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
