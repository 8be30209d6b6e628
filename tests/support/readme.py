"""README.md's `make run` walkthrough, as the tests run it: `devstack.run` (what `make run`
runs) on free ports, and the grpcurl calls of the README's block, run as written with the
README's fixed addresses mapped to the ports the services got."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devstack.tools import ROOT, go_tool

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


@contextmanager
def make_run(
    state: Path, env: Mapping[str, str] | None = None, startup: float = 60.0
) -> Iterator[dict[str, str]]:
    """`make run` (``devstack.run --free-ports``) in ``state`` with ``env`` added (e.g.
    ``BROKER=kafka``), until its summary is printed; yields each service's address. At the
    end, Ctrl-C as a terminal sends it (to the process group): it must stop cleanly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--state-dir", str(state), "--free-ports"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    addresses: dict[str, str] = {}
    output = []
    deadline = time.monotonic() + startup
    try:
        for line in proc.stdout:
            output.append(line)
            if m := re.match(r"\s+(order|inventory|payment|shipping)\s+(\S+:\d+)\s", line):
                addresses[m.group(1)] = m.group(2)
            if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
                break
        assert len(addresses) == 4, "".join(output)
        yield addresses
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert rest.rstrip().endswith("stopped."), rest


def grpcurl_as(certs: Path) -> list[str]:
    """The README's ``gc`` alias: grpcurl with the certificate in ``certs``, a deadline."""
    return [
        go_tool("grpcurl"),
        "-cacert", str(certs / "ca.pem"),
        "-cert", str(certs / "cert.pem"),
        "-key", str(certs / "key.pem"),
        "-max-time", "10",
    ]  # fmt: skip


def walk_readme(addresses: Mapping[str, str], certs: Path) -> str:
    """Run the README's grpcurl calls as written, with the operator's certificate in
    ``certs``: each succeeds, the order placed goes forward only to CONFIRMED (WatchOrder)
    with its whole history (GetOrder). Returns the order's id."""
    gc = grpcurl_as(certs)
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
    assert order_id
    return order_id
