"""README.md's `make run` walkthrough, executed: the grpcurl calls it shows work as written.

`devstack.run` (what `make run` runs) starts on free ports here; the README's fixed
addresses are mapped to the ports the services got, `.state/` to this run's state
(``tests.support.readme``; the same walkthrough runs on each broker, registry and database
in their tiers).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.readme import grpcurl_as, make_run, readme_grpcurl_calls, walk_readme

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    state = tmp_path_factory.mktemp("make-run")
    with make_run(state) as addresses:
        yield addresses, state


def test_the_readme_grpcurl_walkthrough_works(running: tuple[dict[str, str], Path]) -> None:
    addresses, state = running
    walk_readme(addresses, state / "certs" / "operator")


def test_the_readme_declined_card_cancels(running: tuple[dict[str, str], Path]) -> None:
    """The README says: try tok_decline; the order ends CANCELLED with a reason."""
    addresses, state = running
    gc = grpcurl_as(state / "certs" / "operator")
    place = next(c for c in readme_grpcurl_calls() if c[-1].endswith("/PlaceOrder"))
    body = json.loads(place[place.index("-d") + 1])
    body.update(payment_token="tok_decline", idempotency_key="readme-decline")
    order_addr, method = addresses["order"], "shop.order.v1.OrderService/"
    out = subprocess.run(
        [*gc, "-d", json.dumps(body), addresses["order"], method + "PlaceOrder"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    order_id = json.loads(out.stdout)["order"]["order_id"]
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run(
            [*gc, "-d", json.dumps({"order_id": order_id}), order_addr, method + "GetOrder"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        order = json.loads(out.stdout)["order"]
        final = order["status"] in ("ORDER_STATUS_CONFIRMED", "ORDER_STATUS_CANCELLED")
        if final or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert order["status"] == "ORDER_STATUS_CANCELLED", order
    assert "declined" in order["cancel_reason"]
