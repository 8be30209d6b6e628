"""Fault scenarios through real Consul KV into a real inventory instance: applied with the
management token (devstack.faults), watched by the instance, injected by its interceptor."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.faults import active_faults, apply_scenario, clear_faults, load_scenario
from devstack.stack import Stack
from meshkit.rpc.faults import DELAY, Fault
from meshkit.security.identity import SpiffeId
from tests.conftest import StackFactory
from tests.integration.direct import get_stock, leaf_channel
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

GET_STOCK = "/shop.inventory.v1.InventoryService/GetStock"


@dataclass
class Faulty:
    """The module's stack (Consul, NATS, one inventory) and a channel per caller."""

    stack: Stack
    order: grpc.aio.Channel  # an identity the intentions allow GetStock
    operator: grpc.aio.Channel  # another one

    @property
    def consul(self) -> tuple[str, str]:
        assert self.stack.consul is not None
        return self.stack.consul.http_addr, self.stack.consul.management_token

    def apply(self, scenario: str | Fault) -> Fault:
        return apply_scenario(*self.consul, scenario)

    def clear(self) -> None:
        clear_faults(*self.consul)

    def injected(self, kind: str) -> float:
        port = self.stack.services["inventory"].info["metrics_port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "mesh_faults_injected_total"
            and s.labels == {"method": GET_STOCK, "kind": kind}
        )


@pytest.fixture(scope="module")
def stack(module_stack: StackFactory) -> Stack:
    return module_stack("inventory")


@pytest.fixture
async def faulty(stack: Stack) -> AsyncIterator[Faulty]:
    address = stack.services["inventory"].address
    trust_domain = stack.trust_domain
    async with AsyncExitStack() as channels:
        order, operator = [
            await channels.enter_async_context(
                leaf_channel(address, stack.ca, stack.ca.cert_pem, SpiffeId(trust_domain, who))
            )
            for who in ("order", "operator")
        ]
        f = Faulty(stack, order, operator)
        try:
            yield f
        finally:
            f.clear()


async def code_of(ch: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await get_stock(ch)
    except grpc.aio.AioRpcError as err:
        if err.code() is not grpc.StatusCode.OK:
            assert "fault injected" in (err.details() or ""), err.details()
        return err.code()
    return grpc.StatusCode.OK


async def codes(ch: grpc.aio.Channel, n: int) -> list[grpc.StatusCode]:
    """``n`` GetStock calls, 50 at a time."""
    out: list[grpc.StatusCode] = []
    while len(out) < n:
        out += await asyncio.gather(*(code_of(ch) for _ in range(min(50, n - len(out)))))
    return out


async def test_inventory_abort_30pct_fails_about_30_percent_and_clearing_restores_all(
    faulty: Faulty,
) -> None:
    assert await codes(faulty.order, 50) == [grpc.StatusCode.OK] * 50
    scenario = faulty.apply("inventory-abort-30pct")
    assert active_faults(*faulty.consul) == {"inventory": [scenario]}

    async def failing() -> bool:
        return scenario.status in await codes(faulty.order, 20)

    await eventually(failing, what="the instance injecting the scenario")
    got = await codes(faulty.order, 400)
    failed = got.count(scenario.status)
    assert set(got) <= {grpc.StatusCode.OK, scenario.status}
    assert 0.2 * 400 <= failed <= 0.4 * 400, f"{failed} of 400 failed"
    assert faulty.injected("abort") >= failed

    faulty.clear()
    assert active_faults(*faulty.consul) == {}

    async def all_ok() -> bool:
        return await codes(faulty.order, 30) == [grpc.StatusCode.OK] * 30

    await eventually(all_ok, what="every call OK once the fault is cleared")
    assert await codes(faulty.order, 200) == [grpc.StatusCode.OK] * 200


async def test_a_delay_scenario_delays_the_calls(faulty: Faulty) -> None:
    delay = 0.3
    faulty.apply(Fault("inventory-delay", "inventory", DELAY, method="GetStock", delay=delay))

    async def took() -> float:
        started = time.perf_counter()
        assert await code_of(faulty.order) is grpc.StatusCode.OK
        return time.perf_counter() - started

    async def delayed() -> bool:
        return await took() >= delay

    await eventually(delayed, what="a delayed call")
    for _ in range(5):
        assert await took() >= delay
    assert faulty.injected("delay") >= 6


async def test_a_scenario_for_one_caller_hits_only_that_caller(faulty: Faulty) -> None:
    scenario = replace(
        load_scenario("inventory-abort-30pct"),
        name="inventory-abort-order",
        percentage=100,
        callers=("order",),
    )
    faulty.apply(scenario)

    async def order_fails() -> bool:
        return await code_of(faulty.order) is scenario.status

    await eventually(order_fails, what="the order identity's calls failing")
    assert await codes(faulty.order, 50) == [scenario.status] * 50
    assert await codes(faulty.operator, 50) == [grpc.StatusCode.OK] * 50


def test_a_service_token_reads_the_faults_and_cannot_write_them(stack: Stack) -> None:
    consul = stack.consul
    assert consul is not None
    token = consul.service_token("inventory")
    key = "/v1/kv/mesh/faults/inventory"
    with pytest.raises(urllib.error.HTTPError) as denied:
        consul.put(key, {"faults": []}, token=token)
    assert denied.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        consul.get("/v1/kv/mesh/other", token=token)
    assert elsewhere.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as absent:  # no fault set: 404, not 403
        consul.get(key, token=token)
    assert absent.value.code == 404


def test_the_cli_applies_lists_and_clears(stack: Stack) -> None:
    """What `make fault`, `make faults` and `make fault-clear` run, against this stack."""
    consul = stack.consul
    assert consul is not None
    token_file = consul.tokens_dir / "management.token"

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "devstack.faults", "--consul", consul.http_addr,
             "--token-file", str(token_file), *args],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return done.stdout

    assert "applied shipping-unavailable: shipping *: abort UNAVAILABLE, 100% for order" in cli(
        "apply", "shipping-unavailable", "--callers", "order"
    )
    assert "applied payment-delay-2s" in cli("apply", "payment-delay-2s")
    listed = {line.split()[0]: line for line in cli("list").splitlines()[1:]}
    assert listed["shipping-unavailable"].endswith("ACTIVE (changed)")  # its callers
    assert listed["payment-delay-2s"].endswith("ACTIVE")
    assert not listed["order-slow-db"].endswith("ACTIVE")
    assert set(active_faults(consul.http_addr, consul.management_token)) == {
        "shipping",
        "payment",
    }
    assert "removed payment-delay-2s" in cli("remove", "payment-delay-2s")
    assert set(active_faults(consul.http_addr, consul.management_token)) == {"shipping"}
    cli("clear")
    assert active_faults(consul.http_addr, consul.management_token) == {}
    assert "ACTIVE" not in cli("list")
    missing = subprocess.run(
        [sys.executable, "-m", "devstack.faults", "--consul", consul.http_addr,
         "--token-file", str(token_file), "apply", "nope"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert missing.returncode == 2 and "no fault scenario 'nope'" in missing.stderr
