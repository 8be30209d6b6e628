"""Admission on a real hop: client -> order (subprocess) -> inventory (a held stand-in).

The order service runs with a mesh file of its own: PlaceOrder at most ``LIMIT`` calls in
flight, and its usual time known after ``MIN_SAMPLES`` calls. The stand-in `inventory` is
served in this process by the real runtime (as in test_deadlines.py); it takes at least
``DELAY`` per call and holds calls while ``hold`` is set, so PlaceOrder calls stay in flight
in the order service for as long as a test wants. Every wait polls for a state; nothing
depends on how fast a loaded machine is.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.services import ServiceProcess
from devstack.stack import Stack
from meshkit.config import DEFAULT_MESH_FILE
from meshkit.mesh import open_mesh
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2_grpc
from tests.conftest import ROOT, StackFactory
from tests.integration.test_deadlines import place_order_request
from tests.support.inthread import served_in_thread

pytestmark = pytest.mark.integration

PLACE_ORDER = "/shop.order.v1.OrderService/PlaceOrder"
LIMIT = 2  # PlaceOrder's maximum in flight in the order service
MIN_SAMPLES = 3
DELAY = 1.0  # the least time a GetStock takes, so the least a PlaceOrder takes
TOO_SHORT = 0.5  # a budget under PlaceOrder's usual time (at least DELAY)
ENOUGH = 20.0


class HeldInventory(inventory_pb2_grpc.InventoryServiceServicer):
    """Answers after DELAY, and not before ``hold`` is cleared; records what it saw. Runs
    on another thread's loop: the test reads plain counters and sets a plain flag."""

    def __init__(self) -> None:
        self.hold = False
        self.started = 0
        self.cancelled = 0

    async def GetStock(self, request, context):  # type: ignore[no-untyped-def]
        self.started += 1
        try:
            await asyncio.sleep(DELAY)
            while self.hold:  # noqa: ASYNC110 (a flag set from the test's thread)
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return inventory_pb2.GetStockResponse(
            stock=inventory_pb2.StockLevel(sku=request.sku, available=10)
        )


def admission_mesh_file(path: Path) -> Path:
    """The shipped mesh file with PlaceOrder's limit at LIMIT and MIN_SAMPLES samples."""
    text = (ROOT / DEFAULT_MESH_FILE).read_text()
    for old, new in [
        ("min_samples = 20", f"min_samples = {MIN_SAMPLES}"),
        (
            "[admission.methods]\n",
            f'[admission.methods]\n"{PLACE_ORDER}" = {{ max_in_flight = {LIMIT} }}\n',
        ),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def own(module_stack: StackFactory) -> Stack:
    return module_stack(label="admission")


@pytest.fixture(scope="module")
def inventory(own: Stack) -> Iterator[HeldInventory]:
    """Served on an event loop of its own thread (Consul's checks must pass meanwhile)."""
    servicer = HeldInventory()
    with served_in_thread(own.mesh_config("inventory"), servicer, own.wait_passing):
        yield servicer


@pytest.fixture(scope="module")
def order(own: Stack, inventory: HeldInventory) -> Iterator[ServiceProcess]:
    mesh_file = admission_mesh_file(own.state / "admission-mesh.toml")
    proc = own.start_service("order", "--mesh-file", str(mesh_file))
    yield proc
    own.launcher.stop_all()  # before the stand-in goes


@pytest.fixture
async def place(own: Stack, order: ServiceProcess) -> AsyncIterator[Callable[..., grpc.aio.Call]]:
    mesh, _ = await open_mesh(own.mesh_config("operator"))
    stub = mesh.stub(order_pb2_grpc.OrderServiceStub, "order")
    await mesh.discovery.ready()  # the stub's service is watched once asked for
    yield lambda timeout: stub.PlaceOrder(place_order_request(), timeout=timeout)
    await mesh.close()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    # Polled: the stand-in runs on another thread's loop, the order service in a process.
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


def shed_total(proc: ServiceProcess, reason: str) -> float:
    url = f"http://127.0.0.1:{proc.info['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mesh_shed_total" and sample.labels == {
                "method": PLACE_ORDER,
                "reason": reason,
            }:
                return sample.value
    return 0.0


async def test_one_call_over_the_limit_is_shed_while_the_others_succeed(
    place: Callable[..., grpc.aio.Call], inventory: HeldInventory, order: ServiceProcess
) -> None:
    shed_before = shed_total(order, "in_flight")
    seen = inventory.started
    inventory.hold = True
    try:
        held = [asyncio.ensure_future(place(ENOUGH)) for _ in range(LIMIT)]
        # Both are in the order service's PlaceOrder, waiting on inventory.
        await until(lambda: inventory.started == seen + LIMIT, "the held calls reach inventory")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await place(ENOUGH)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        details = err.value.details() or ""
        assert f"{PLACE_ORDER} has {LIMIT} calls in flight, its maximum" in details
        assert inventory.started == seen + LIMIT  # refused before any work
    finally:
        inventory.hold = False
    for response in await asyncio.gather(*held):
        assert response.order.order_id
    assert shed_total(order, "in_flight") == shed_before + 1
    await place(ENOUGH)  # the slots are free again


async def test_a_call_with_less_left_than_usual_is_refused_up_front(
    place: Callable[..., grpc.aio.Call], inventory: HeldInventory, order: ServiceProcess
) -> None:
    for _ in range(MIN_SAMPLES):  # every PlaceOrder takes at least DELAY: its usual time
        await place(ENOUGH)
    shed_before = shed_total(order, "deadline")
    seen = inventory.started
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await place(TOO_SHORT)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value.details()
    assert "as a rule; not worth starting" in (err.value.details() or "")
    assert inventory.started == seen  # refused up front: no downstream call was made
    assert shed_total(order, "deadline") == shed_before + 1
    response = await place(ENOUGH)  # enough left: served
    assert response.order.order_id


async def test_a_caller_that_goes_away_cancels_the_downstream_call(
    place: Callable[..., grpc.aio.Call], inventory: HeldInventory
) -> None:
    seen, cancelled = inventory.started, inventory.cancelled
    inventory.hold = True
    try:
        call = place(ENOUGH)
        await until(lambda: inventory.started == seen + 1, "the call reaches inventory")
        call.cancel()
        # The order service's handler is cancelled, and with it its GetStock: the stand-in's
        # handler is cancelled long before it would have answered (it is held).
        await until(lambda: inventory.cancelled == cancelled + 1, "inventory sees the cancel")
    finally:
        inventory.hold = False
    with pytest.raises(asyncio.CancelledError):
        await call
