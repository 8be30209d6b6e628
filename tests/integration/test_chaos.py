"""Chaos under steady load: a fault injected while orders flow, the outcome checked.

Every test drives a bounded, steady load of PlaceOrder calls (``tests/support/load.py``:
one attempt each, ``RATE`` a second for ``DURATION`` seconds), injects a fault in the
middle, and then checks what must hold whatever happened: every order the stack holds is
final, and the invariants over the four databases hold (stock sold equals what was
confirmed, one capture per confirmed order, nothing left reserved). Each prints its
figures: the calls by status, the error rate, and the recovery time (from the fault's
end, or from an instant fault such as a kill, until calls succeed again). No timing is
asserted beyond generous bounds: a loaded 2-core machine must pass.

One stack for the module (its own Consul, NATS and state directory: the tests kill
services and restart the infrastructure), the inventory seeded with enough stock that
the load never runs out of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.faults import apply_scenario, clear_faults
from devstack.services import ServiceProcess
from devstack.stack import Stack
from devstack.supervisor import RestartPolicy, Supervisor
from meshkit.config import ResilienceSettings
from meshkit.mesh import open_mesh
from meshkit.rpc.breaker import CLOSED, OPEN
from meshkit.rpc.faults import Fault
from meshkit.telemetry.metrics import METRICS_PATH
from tests.conftest import StackFactory
from tests.support.load import Load, drive
from tests.support.orders import (
    CONFIRMED,
    SAGA_TIMEOUT,
    Orders,
    check_invariants,
    order_request,
    settle,
)
from tests.support.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RATE = 20.0  # PlaceOrder calls a second
DURATION = 12.0  # seconds of load: 240 calls
FAULT_AT = 4.0  # seconds into the load
BROKER_DOWN = 3.0  # seconds NATS stays stopped
CONSUL_DOWN = 3.0  # seconds Consul stays stopped
BREAKER_CALL_TIMEOUT = 2.0  # the load's PlaceOrder deadline in the breaker test
BREAKER_DURATION = 90.0  # at most, in the breaker test: until the breaker closed again

SKUS = ("SKU-CABLE", "SKU-MOUSE", "SKU-KEYBOARD")
CATALOG = {sku: 100_000 for sku in (*SKUS, "SKU-MONITOR", "SKU-LAPTOP")}


def service_env(stack: Stack, name: str) -> dict[str, str]:
    if name == "order":
        return {"SHOP_ORDER_SAGA_TIMEOUT": str(SAGA_TIMEOUT)}
    if name == "inventory":
        return {"SHOP_INVENTORY_SEED": str(stack.state / "catalog.json")}
    return {}


def start(stack: Stack, name: str) -> ServiceProcess:
    """One more instance of ``name``, ready and passing in Consul."""
    return stack.start_service(name, env=service_env(stack, name))


def running(stack: Stack, name: str) -> list[ServiceProcess]:
    return [p for p in stack.launcher.started if p.name == name and p.running]


def passing_ids(stack: Stack, name: str) -> set[str]:
    """The ids of ``name``'s instances passing in Consul."""
    assert stack.consul is not None
    entries = stack.consul.get(f"/v1/health/service/{name}?passing=1")
    return {e["Service"]["ID"] for e in entries} if isinstance(entries, list) else set()


async def metric(stack: Stack, of: str, sample: str, /, **labels: str) -> float:
    """The sum of ``sample`` over the running instances of ``of`` (their /metrics),
    over the series whose labels end with the values given (a method label may be the
    full ``/pkg.Service/Method``)."""
    total = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        for proc in running(stack, of):
            url = f"http://127.0.0.1:{proc.info['metrics_port']}{METRICS_PATH}"
            text = (await http.get(url)).raise_for_status().text
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == sample and all(
                        s.labels.get(k, "").endswith(v) for k, v in labels.items()
                    ):
                        total += s.value
    return total


def fault_control(stack: Stack) -> tuple[str, str]:
    """Consul's address and the management token: what writes the faults' KV."""
    assert stack.consul is not None
    return stack.consul.http_addr, stack.consul.management_token


@pytest.fixture(scope="module")
def stack(module_stack: StackFactory) -> Stack:
    stack = module_stack(label="chaos")
    (stack.state / "catalog.json").write_text(json.dumps(CATALOG))
    for name in ("inventory", "payment", "shipping", "order"):
        start(stack, name)
    return stack


@pytest.fixture(scope="module")
def supervisor(stack: Stack) -> Iterator[Supervisor]:
    """devstack's supervisor, polled by a thread for the whole module: the processes it
    restarts die with that thread (PR_SET_PDEATHSIG), so it lives as long as the stack.
    A test watches what it wants brought back, and unwatches it at its end."""
    with Supervisor.for_stack(stack, RestartPolicy(initial=0.5, burst=3)).running(0.05) as sup:
        yield sup


@pytest.fixture
async def orders(stack: Stack) -> AsyncIterator[Orders]:
    mesh, _ = await open_mesh(stack.mesh_config("operator"))
    client = Orders(mesh)
    await mesh.discovery.ready()
    await client.reachable()
    yield client
    await mesh.close()


@pytest.fixture
async def bare_orders(stack: Stack) -> AsyncIterator[Orders]:
    """As ``orders``, with the client's resilience layer off (no breaker of its own for
    the order service): its calls show what the order service answers."""
    config = stack.mesh_config("operator")
    policy = dataclasses.replace(config.policy, resilience=ResilienceSettings(enabled=False))
    mesh, _ = await open_mesh(dataclasses.replace(config, policy=policy))
    client = Orders(mesh)
    await mesh.discovery.ready()
    await client.reachable()
    yield client
    await mesh.close()


def placer(orders: Orders, timeout: float = 5.0) -> Callable[[int], Awaitable[str]]:
    """One PlaceOrder attempt per call of the load (a tenth with a declined card, so
    compensations run too); returns the order id."""

    async def place(i: int) -> str:
        token = "tok_decline" if i % 10 == 9 else "tok_visa"
        request = order_request((SKUS[i % len(SKUS)], 1), token=token, customer=f"c-{i % 7}")
        return (await orders.stub.PlaceOrder(request, timeout=timeout)).order.order_id

    return place


async def under_load(
    orders: Orders,
    fault: Callable[[Load], Awaitable[None]],
    *,
    timeout: float = 5.0,
    duration: float = DURATION,
    stop: asyncio.Event | None = None,
) -> Load:
    """The steady load, with ``fault(load)`` (a coroutine function) run ``FAULT_AT``
    seconds into it; returns once both have ended (the load early if ``stop`` is set)."""
    load = Load()

    async def inject() -> None:
        await asyncio.sleep(FAULT_AT)
        await fault(load)

    driving = asyncio.create_task(
        drive(placer(orders, timeout), rate=RATE, duration=duration, load=load, stop=stop)
    )
    try:
        await inject()
    except BaseException:
        driving.cancel()
        await asyncio.gather(driving, return_exceptions=True)
        raise
    await driving
    return load


async def all_final(stack: Stack, orders: Orders, load: Load) -> dict[str, int]:
    """Every order the load placed is final, and so is every order in the stack (those
    whose PlaceOrder failed after the commit too); the invariants hold. Returns the
    outcomes of the load's orders (CONFIRMED, or a cancellation's reason)."""
    finals = await settle(orders, [c.result for c in load.ok], timeout=SAGA_TIMEOUT + 60)
    outcomes = Counter(
        "CONFIRMED" if o.status == CONFIRMED else o.cancel_reason.split(":")[0] for o in finals
    )
    totals = await asyncio.to_thread(check_invariants, stack, 30.0, CATALOG)
    print(f"  outcomes of the load's orders: {dict(outcomes)}; every order so far: {totals}")
    return dict(outcomes)


async def succeeds_again(orders: Orders) -> None:
    """A PlaceOrder succeeds (after the fault, before the next test)."""

    async def ok() -> bool:
        try:
            await placer(orders)(0)
        except Exception:
            return False
        return True

    await eventually(ok, timeout=60, interval=0.5, what="a PlaceOrder that succeeds")


@pytest.mark.parametrize("service", ["inventory", "payment"])
async def test_one_of_two_instances_killed_under_load(
    stack: Stack, orders: Orders, service: str
) -> None:
    """SIGKILL (no deregistration) of one of two instances: the other serves the calls
    (inventory's GetStock from the order service) and the events (the durable consumer
    the instances share redelivers what the dead one held); every order ends final."""
    while len(running(stack, service)) < 2:
        start(stack, service)
    stack.wait_passing(service, count=2)
    victim, survivor = running(stack, service)[:2]

    async def kill(load: Load) -> None:
        load.mark("kill")
        await asyncio.to_thread(victim.kill)

    load = await under_load(orders, kill)
    load.report(f"one of two {service} instances killed", "kill")
    assert survivor.running
    assert load.ok, "no call succeeded"
    # The survivor serves: the calls of the last seconds of the load all succeeded.
    tail = [c for c in load.calls if c.started > load.began + DURATION - 3]
    assert tail and all(c.status == "OK" for c in tail), Counter(c.status for c in tail)
    outcomes = await all_final(stack, orders, load)
    assert outcomes.get("CONFIRMED"), outcomes
    await eventually(lambda: len(passing_ids(stack, service)) == 1, timeout=30, what="one passing")


async def test_broker_restarted_under_load(stack: Stack, orders: Orders) -> None:
    """NATS stopped for a few seconds and started again (same port, same store) while
    orders flow: PlaceOrder keeps succeeding (it only commits to the order's outbox), the
    outboxes hold the events until the broker is back, the durable consumers resume; no
    order is lost, every one ends final (confirmed, unless the saga timed out meanwhile)."""
    assert stack.nats is not None

    async def restart(load: Load) -> None:
        load.mark("broker down")
        await asyncio.to_thread(stack.nats.stop)
        await asyncio.sleep(BROKER_DOWN)
        await asyncio.to_thread(stack.nats.start)
        load.mark("broker up")

    load = await under_load(orders, restart)
    load.report("NATS restarted", "broker down", "broker up")
    assert load.ok
    outcomes = await all_final(stack, orders, load)
    assert outcomes.get("CONFIRMED"), outcomes


async def test_consul_restarted_under_load(stack: Stack, orders: Orders) -> None:
    """The Consul agent stopped for a few seconds and started again (same ports, same
    trust domain; a dev agent: it comes back with an empty catalog): calls keep flowing
    on the discovery each caller has cached, every running instance registers itself
    again and passes its check, and a client started afterwards is served."""
    assert stack.consul is not None
    domain = stack.consul.trust_domain()
    instances = {
        name: {p.info["instance_id"] for p in running(stack, name)}
        for name in ("inventory", "payment", "shipping", "order")
    }

    async def restart(load: Load) -> None:
        load.mark("consul down")
        await asyncio.to_thread(stack.restart_consul, CONSUL_DOWN)
        load.mark("consul up")

    load = await under_load(orders, restart)
    load.report("Consul restarted", "consul down", "consul up")
    down, up = load.marks["consul down"], load.marks["consul up"]
    during = Counter(c.status for c in load.calls if down <= c.started <= up)
    assert during and set(during) == {"OK"}, f"calls while Consul was down: {during}"
    assert load.recovery(up) is not None
    for name, ids in instances.items():
        await eventually(
            lambda name=name, ids=ids: passing_ids(stack, name) >= ids,
            timeout=30,
            what=f"{name}'s instances {ids} registered and passing again",
        )
    await all_final(stack, orders, load)
    await succeeds_again(orders)
    # The same trust domain (devstack pins the cluster id): a client that starts now, with
    # a leaf from the restarted agent's CA, is one of the services' mesh.
    assert stack.consul.trust_domain() == domain
    mesh, _ = await open_mesh(stack.mesh_config("operator"))
    try:
        await mesh.discovery.ready()
        await succeeds_again(Orders(mesh))
    finally:
        await mesh.close()


async def test_a_killed_service_brought_back_by_the_supervisor_under_load(
    stack: Stack, orders: Orders, supervisor: Supervisor
) -> None:
    """The order service (the one the load calls) SIGKILLed; devstack's supervisor starts
    it again (a new instance, passing in Consul). Calls fail while it is down (no retry
    in the load) and succeed again once it is back; whatever it had committed before the
    crash is carried to a final status by its outbox, sweeper and consumer."""
    (victim,) = running(stack, "order")
    supervisor.watch(victim)

    async def crash(load: Load) -> None:
        load.mark("kill")
        await asyncio.to_thread(victim.kill)
        new = await eventually(
            lambda: (
                supervisor.restarts("order") == 1
                and supervisor.state("order") == "running"
                and supervisor.current("order")
            ),
            timeout=60,
            what="the order service restarted by the supervisor",
        )
        assert new is not victim
        await eventually(
            lambda: new.info["instance_id"] in passing_ids(stack, "order"),
            timeout=30,
            what="the new order instance passing in Consul",
        )
        load.mark("back")

    try:
        load = await under_load(orders, crash)
    finally:
        supervisor.unwatch("order")  # the later tests' faults are their own
    load.report("order SIGKILLed, restarted by the supervisor", "kill", "back")
    (current,) = running(stack, "order")
    assert current is stack.services["order"] and current is not victim
    assert load.recovery(load.marks["kill"]) is not None, "no call succeeded after the kill"
    assert load.ok
    await all_final(stack, orders, load)
    await succeeds_again(orders)


async def test_inventory_delayed_past_the_deadline_opens_the_order_services_breaker(
    stack: Stack, bare_orders: Orders
) -> None:
    """GetStock (the one RPC path between services: payment is reached by events only)
    delayed past its deadline for the order service's calls: the order service's
    breaker for inventory opens, PlaceOrder fails fast with UNAVAILABLE naming it (no
    order is made), and once the fault is cleared the breaker half-opens and closes
    again and orders go through. The load's client has no breaker of its own here."""
    orders = bare_orders
    delay = Fault(
        name="inventory-getstock-delay",
        service="inventory",
        method="GetStock",
        kind="delay",
        delay=BREAKER_CALL_TIMEOUT + 2.0,  # past the call's whole deadline
        callers=("order",),
    )

    async def breaker_is(state: int) -> bool:
        return await metric(stack, "order", "mesh_breaker_state", service="inventory") == state

    done = asyncio.Event()

    async def fault(load: Load) -> None:
        await asyncio.to_thread(apply_scenario, *fault_control(stack), delay)
        load.mark("fault")
        await eventually(
            lambda: breaker_is(OPEN), timeout=45, interval=0.2, what="the breaker open"
        )
        load.mark("breaker open")
        await asyncio.sleep(2.0)  # calls fail fast meanwhile
        await asyncio.to_thread(clear_faults, *fault_control(stack), "inventory")
        load.mark("cleared")
        # The breaker half-opens after its open time, on the next call: the load goes on.
        await eventually(
            lambda: breaker_is(CLOSED), timeout=45, interval=0.2, what="the breaker closed"
        )
        load.mark("breaker closed")
        await asyncio.sleep(3.0)  # and calls succeed again
        done.set()

    try:
        load = await under_load(
            orders, fault, timeout=BREAKER_CALL_TIMEOUT, duration=BREAKER_DURATION, stop=done
        )
    finally:
        await asyncio.to_thread(clear_faults, *fault_control(stack), "inventory")
    load.report("inventory GetStock delayed past its deadline", "cleared", "breaker closed")
    named = [c for c in load.failed if "circuit breaker of inventory is open" in str(c.result)]
    assert named, f"no PlaceOrder named the breaker: {load.by_status()}"
    assert {c.status for c in named} == {"UNAVAILABLE"}
    took = statistics.median(c.ended - c.started for c in named)
    print(f"  {len(named)} calls failed fast naming the breaker, median {took * 1000:.0f} ms")
    assert took < BREAKER_CALL_TIMEOUT / 2, took  # fast: not waiting out the deadline
    assert await metric(
        stack, "order", "mesh_breaker_transitions_total", service="inventory", state="open"
    )
    # Closed again, and orders go through.
    after = [c for c in load.calls if c.started > load.marks["breaker closed"]]
    assert after and any(c.status == "OK" for c in after), Counter(c.status for c in after)
    await succeeds_again(orders)
    await all_final(stack, orders, load)


async def test_inventory_aborting_30_percent_retries_stay_within_budget(
    stack: Stack, bare_orders: Orders
) -> None:
    """30 % of GetStock calls abort UNAVAILABLE (infra/faults/inventory-abort-30pct): the
    order service's channel retries them (GetStock has no side effects), within gRPC's
    retry policy (3 attempts) and its throttle (retries stop while failures outweigh
    successes). Counted: the order service's PlaceOrder calls (one GetStock each: the
    load's orders have one line), the inventory's GetStock attempts and its injected
    aborts; retries = attempts - calls."""
    orders = bare_orders

    async def counts() -> tuple[float, float, float]:
        calls = await metric(stack, "order", "mesh_server_handled_total", grpc_method="PlaceOrder")
        attempts = await metric(
            stack, "inventory", "mesh_server_handled_total", grpc_method="GetStock"
        )
        aborts = await metric(
            stack, "inventory", "mesh_faults_injected_total", method="GetStock", kind="abort"
        )
        return calls, attempts, aborts

    async def fault(load: Load) -> None:
        await asyncio.to_thread(apply_scenario, *fault_control(stack), "inventory-abort-30pct")
        load.mark("fault")
        await asyncio.sleep(DURATION - FAULT_AT - 2.0)
        await asyncio.to_thread(clear_faults, *fault_control(stack), "inventory")
        load.mark("cleared")

    before = await counts()
    try:
        load = await under_load(orders, fault)
    finally:
        await asyncio.to_thread(clear_faults, *fault_control(stack), "inventory")
    after = await counts()
    calls, attempts, aborts = (a - b for a, b in zip(after, before, strict=True))
    retries = attempts - calls
    load.report("inventory aborting 30 % of GetStock", "cleared")
    print(
        f"  order's PlaceOrder calls {calls:.0f}, inventory's GetStock attempts"
        f" {attempts:.0f}, aborts injected {aborts:.0f}: retries {retries:.0f}"
        f" ({retries / calls:.1%} of the calls)"
    )
    assert aborts > 0 and calls >= len(load.calls) * 0.9
    assert 0 <= retries <= aborts  # a retry only follows a failed attempt
    assert attempts <= 3 * calls  # the policy's maxAttempts
    # Without a budget 30 % aborts cost 0.3 + 0.09 = 39 % more attempts; the throttle
    # keeps it lower, and far from the 200 % a retry storm of 3 attempts could reach.
    assert retries <= 0.45 * calls, (retries, calls)
    await all_final(stack, orders, load)


async def test_payment_delayed_is_off_the_order_path(stack: Stack, orders: Orders) -> None:
    """infra/faults/payment-delay-2s under load: every payment *RPC* answers 2 s late,
    but the order flow reaches payment by events only (services/order/flow.py; nobody
    calls PaymentService by gRPC), so no fault is injected, PlaceOrder is unaffected
    and the orders confirm at their usual pace. (The breaker scenario is on the one RPC
    path between services, order -> inventory GetStock, above.)"""

    async def fault(load: Load) -> None:
        await asyncio.to_thread(apply_scenario, *fault_control(stack), "payment-delay-2s")
        load.mark("fault")
        await asyncio.sleep(DURATION - FAULT_AT - 2.0)
        await asyncio.to_thread(clear_faults, *fault_control(stack), "payment")
        load.mark("cleared")

    try:
        load = await under_load(orders, fault)
    finally:
        await asyncio.to_thread(clear_faults, *fault_control(stack), "payment")
    load.report("payment delayed 2 s (no RPC path)", "cleared")
    injected = await metric(stack, "payment", "mesh_faults_injected_total")
    print(f"  faults injected on payment: {injected:.0f}")
    assert injected == 0
    assert load.error_rate < 0.05, load.by_status()  # none, unless the machine stalls
    outcomes = await all_final(stack, orders, load)
    assert outcomes.get("CONFIRMED"), outcomes
