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
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from devstack.services import ServiceProcess
from devstack.stack import Stack
from devstack.supervisor import RestartPolicy, Supervisor
from meshkit.mesh import open_mesh
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


def placer(orders: Orders, timeout: float = 5.0) -> Callable[[int], Awaitable[str]]:
    """One PlaceOrder attempt per call of the load (a tenth with a declined card, so
    compensations run too); returns the order id."""

    async def place(i: int) -> str:
        token = "tok_decline" if i % 10 == 9 else "tok_visa"
        request = order_request((SKUS[i % len(SKUS)], 1), token=token, customer=f"c-{i % 7}")
        return (await orders.stub.PlaceOrder(request, timeout=timeout)).order.order_id

    return place


async def under_load(
    orders: Orders, fault: Callable[[Load], Awaitable[None]], *, timeout: float = 5.0
) -> Load:
    """The steady load, with ``fault(load)`` (a coroutine function) run ``FAULT_AT``
    seconds into it; returns once both have ended."""
    load = Load()

    async def inject() -> None:
        await asyncio.sleep(FAULT_AT)
        await fault(load)

    driving = asyncio.create_task(
        drive(placer(orders, timeout), rate=RATE, duration=DURATION, load=load)
    )
    await asyncio.gather(driving, inject())
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
    """The Consul agent stopped for a few seconds and started again (same ports; a dev
    agent: it comes back with an empty catalog): calls keep flowing on the discovery
    each caller has cached, and every running instance registers itself again and
    passes its check."""
    assert stack.consul is not None
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
