"""README.md's `make run` walkthrough, executed: the grpcurl calls it shows work as written.

`devstack.run` (what `make run` runs) starts on free ports here; the README's fixed
addresses are mapped to the ports the services got, `.state/` to this run's state.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.tools import go_tool
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

STATUS_ORDER = [
    f"ORDER_STATUS_{s}" for s in ("PENDING", "STOCK_RESERVED", "PAID", "CONFIRMED", "CANCELLED")
]
README_PORTS = {"50051": "order", "50052": "inventory", "50053": "payment", "50054": "shipping"}


def readme_grpcurl_calls() -> list[list[str]]:
    """The `gc ...` commands of the README's grpcurl block, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    block = text.split("### Calling the services with grpcurl", 1)[1].split("```sh", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("gc ")]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    state = tmp_path_factory.mktemp("make-run")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--state-dir", str(state), "--free-ports"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    addresses: dict[str, str] = {}
    output = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        output.append(line)
        if m := re.match(r"\s+(order|inventory|payment|shipping)\s+(\S+:\d+)\s", line):
            addresses[m.group(1)] = m.group(2)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert len(addresses) == 4, "".join(output)
    yield addresses, state
    # Ctrl-C, as a terminal sends it: to the launcher's process group.
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert rest.rstrip().endswith("stopped.")


def test_the_readme_grpcurl_walkthrough_works(make_run: tuple[dict[str, str], Path]) -> None:
    addresses, state = make_run
    certs = state / "certs" / "operator"
    gc = [
        go_tool("grpcurl"),
        "-cacert", str(certs / "ca.pem"),
        "-cert", str(certs / "cert.pem"),
        "-key", str(certs / "key.pem"),
        "-max-time", "10",
    ]  # fmt: skip
    calls = readme_grpcurl_calls()
    assert len(calls) >= 7
    order_id = ""
    for args in calls:
        args = [
            addresses[README_PORTS[a.rsplit(":", 1)[1]]] if a.startswith("127.0.0.1:") else a
            for a in args
        ]
        args = [a.replace("<order_id from above>", order_id) for a in args]
        out = subprocess.run([*gc, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{args}: {out.stderr}"
        if args[-1].endswith("/PlaceOrder"):
            order = json.loads(out.stdout)["order"]
            order_id = order["order_id"]
            assert order["status"] == "ORDER_STATUS_PENDING", order
        if args[-1].endswith("/WatchOrder"):
            states = [json.loads(m)["order"]["status"] for m in split_messages(out.stdout)]
            assert states == sorted(states, key=STATUS_ORDER.index), states  # forward only
            assert states[-1] == "ORDER_STATUS_CONFIRMED", states
        if args[-1].endswith("/GetOrder"):
            order = json.loads(out.stdout)["order"]
            assert order["order_id"] == order_id
            assert order["status"] == "ORDER_STATUS_CONFIRMED", order
            assert [h["status"] for h in order["history"]] == [
                "ORDER_STATUS_PENDING",
                "ORDER_STATUS_STOCK_RESERVED",
                "ORDER_STATUS_PAID",
                "ORDER_STATUS_CONFIRMED",
            ]


def split_messages(stream: str) -> list[str]:
    """grpcurl prints each streamed message as its own JSON object."""
    decoder = json.JSONDecoder()
    messages, pos = [], 0
    while pos < len(stream):
        if stream[pos].isspace():
            pos += 1
            continue
        _, end = decoder.raw_decode(stream, pos)
        messages.append(stream[pos:end])
        pos = end
    return messages


def test_the_readme_declined_card_cancels(make_run: tuple[dict[str, str], Path]) -> None:
    """The README says: try tok_decline; the order ends CANCELLED with a reason."""
    addresses, state = make_run
    certs = state / "certs" / "operator"
    gc = [
        go_tool("grpcurl"),
        "-cacert", str(certs / "ca.pem"),
        "-cert", str(certs / "cert.pem"),
        "-key", str(certs / "key.pem"),
        "-max-time", "10",
    ]  # fmt: skip
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
