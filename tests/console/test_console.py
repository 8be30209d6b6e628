"""The console end to end in Debian's chromium against a live stack: the topology with 4
healthy services and their edges; an order placed from the page reaching CONFIRMED with
its trace; a deny intention turning its edge red and the next order failing, and lifting
it restoring both; a declined payment shown CANCELLED with its reason. Screenshots are
kept in the pytest tmp dir (its path is printed)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from devstack.edge import AUDIENCE
from tests.console.conftest import ConsoleStack

pytestmark = pytest.mark.integration

SAGA_TIMEOUT = 60_000  # ms: a loaded machine (2 cores, other tiers beside)


def shot(page: Page, stack: ConsoleStack, name: str) -> None:
    path = stack.shots / f"{name}.png"
    page.screenshot(path=str(path))  # the viewport (a full-page shot resizes the graph)
    print(f"screenshot: {path}")


def place(page: Page, payment: str) -> None:
    page.select_option("select[name=payment]", payment)
    page.click("#place")


def test_topology_shows_four_healthy_services_and_their_edges(
    page: Page, console_stack: ConsoleStack
) -> None:
    for name in ("order", "inventory", "payment", "shipping"):
        expect(page.locator(f"#services li[data-service={name}]")).to_have_attribute(
            "data-healthy", "true"
        )
    for edge in ("gateway->order", "gateway->inventory", "order->inventory"):
        expect(page.locator(f"tr.edge-row[data-edge='{edge}']")).to_have_attribute(
            "data-action", "allow"
        )
    expect(page.locator("#topo-note")).to_contain_text("services healthy")
    shot(page, console_stack, "topology")


def test_an_order_from_the_storefront_is_confirmed_with_its_trace(
    page: Page, console_stack: ConsoleStack
) -> None:
    place(page, "tok_visa")
    expect(page.locator("#place-result")).to_contain_text("placed")
    expect(page.locator("#detail-status")).to_have_text("CONFIRMED", timeout=SAGA_TIMEOUT)
    expect(page.locator("#timeline li")).to_have_count(4)  # PENDING .. CONFIRMED
    # The trace waterfall: spans of every service the saga went through.
    heads = page.locator("#waterfall .trace-head")
    for service in ("order", "inventory", "payment", "shipping"):
        expect(heads.filter(has_text=service).first).to_be_visible(timeout=SAGA_TIMEOUT)
    expect(page.locator("#waterfall .span-row").first).to_be_visible()
    # The edges the order crossed show its calls.
    expect(page.locator("tr.edge-row[data-edge='order->inventory']")).to_have_attribute(
        "data-look", "live", timeout=SAGA_TIMEOUT
    )
    shot(page, console_stack, "confirmed")


def test_a_deny_intention_turns_its_edge_red_and_fails_the_next_order_until_lifted(
    page: Page, console_stack: ConsoleStack
) -> None:
    row = page.locator("tr.edge-row[data-edge='order->inventory']")
    row.locator("button.deny").click()
    expect(row).to_have_attribute("data-look", "deny")
    graph = page.locator("#graph")
    expect(graph).to_have_attribute("data-edges", re.compile(r'"order->inventory":"deny"'))
    place(page, "tok_visa")
    result = page.locator("#place-result")
    expect(result).to_have_class("error", timeout=SAGA_TIMEOUT)
    expect(result).to_contain_text("PERMISSION_DENIED")
    expect(page.locator("#orders li.failed-place").first).to_contain_text("PERMISSION_DENIED")
    expect(page.locator("#refusal")).to_contain_text("PERMISSION_DENIED")
    shot(page, console_stack, "denied")

    row.locator("button.lift").click()
    expect(row).to_have_attribute("data-action", "allow")
    expect(row).not_to_have_attribute("data-look", "deny")
    expect(graph).not_to_have_attribute("data-edges", re.compile(r'"order->inventory":"deny"'))
    place(page, "tok_visa")
    expect(result).to_contain_text("placed", timeout=SAGA_TIMEOUT)
    expect(page.locator("#detail-status")).to_have_text("CONFIRMED", timeout=SAGA_TIMEOUT)
    shot(page, console_stack, "restored")


def test_a_declined_payment_is_cancelled_with_its_reason(
    page: Page, console_stack: ConsoleStack
) -> None:
    place(page, "tok_decline")
    expect(page.locator("#place-result")).to_contain_text("placed")
    expect(page.locator("#detail-status")).to_have_text("CANCELLED", timeout=SAGA_TIMEOUT)
    expect(page.locator("#detail-reason")).to_contain_text("card_declined")
    shot(page, console_stack, "cancelled")


def test_the_api_needs_its_scopes(console_stack: ConsoleStack) -> None:
    """No token: 401; a shop token without console:read: 403; console:read without
    console:admin may look but not flip an intention."""
    edge = console_stack.edge
    hydra = edge.hydra
    reader = hydra.create_client(("console:read",), (AUDIENCE,), name="console-reader")
    with httpx.Client(base_url=edge.url, timeout=30) as http:
        assert http.get("/console/api/topology").status_code == 401
        shop = {"Authorization": f"Bearer {edge.token()}"}
        assert http.get("/console/api/topology", headers=shop).status_code == 403
        read = {"Authorization": f"Bearer {hydra.token(reader)}"}
        assert http.get("/console/api/topology", headers=read).status_code == 200
        flip = {"source": "order", "destination": "inventory", "action": "deny"}
        resp = http.post("/console/api/intentions", json=flip, headers=read)
        assert resp.status_code == 403, resp.text
        assert "console:admin" in resp.json()["message"]
        # The page itself holds no data: it is served without a token.
        assert http.get("/console").status_code == 200


def test_a_fault_scenario_is_toggled_from_the_page(page: Page, console_stack: ConsoleStack) -> None:
    """The checkbox writes mesh/faults/<service> through the console's admin token."""
    box = page.locator("input[data-fault='payment-delay-2s']")
    box.check()
    expect(page.locator("li.fault.active")).to_contain_text("payment-delay-2s")
    box.uncheck()
    expect(page.locator("li.fault.active")).to_have_count(0)


def test_without_a_token_the_page_asks_to_sign_in(
    browser: BrowserContext, console_stack: ConsoleStack
) -> None:
    fresh = browser.new_page()  # sessionStorage is per tab: no token here
    try:
        fresh.goto(f"{console_stack.url}/console")
        expect(fresh.locator("#signin")).to_be_visible()
        fresh.fill("#signin textarea", "not-a-token")
        fresh.click("#signin button")
        expect(fresh.locator(".signin .error")).to_contain_text("401")
        shot(fresh, console_stack, "sign-in")
    finally:
        fresh.close()
