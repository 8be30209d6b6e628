"""``make load`` (devstack/load.py) against a stack of its own: a few seconds at a low
rate place orders without errors, print a line a second, and stop on time."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from devstack.load import SUMMARY
from devstack.stack import DOMAIN_SERVICES, Stack
from tests.conftest import ROOT, StackFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(module_stack: StackFactory) -> Stack:
    stack = module_stack(*DOMAIN_SERVICES)
    assert stack.consul is not None
    stack.consul.service_token("operator")  # as make run does: the load's identity
    return stack


def test_a_short_load_places_orders_without_errors_and_stops_on_time(stack: Stack) -> None:
    duration, timeout = 4.0, 5.0
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable, "-m", "devstack.load",
            "--consul", stack.consul_addr, "--state-dir", str(stack.state),
            "--rate", "10", "--duration", str(duration), "--timeout", str(timeout),
            "--mix", "reads:6,orders:3,cancels:1", "--seed", "7", "--json",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    wall = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    summary = json.loads(next(ln for ln in lines if ln.startswith(SUMMARY))[len(SUMMARY) :])
    assert summary["orders_placed"] > 0, out.stdout + out.stderr
    assert summary["errors"] == 0 and summary["abandoned"] == 0, summary
    assert summary["by_kind"]["reads"] > 0, summary
    assert summary["started"] <= 10 * duration, summary
    # It stops on time: the calls start for `duration` seconds, those in flight end
    # within their deadline; what is left is the start-up (the mesh, a leaf, discovery),
    # given a margin that a loaded 2-core machine keeps.
    assert summary["elapsed_s"] < duration + timeout + 15, summary
    assert wall < 60, wall
    live = [ln for ln in lines if ln.startswith("[") and "/s" in ln]
    assert len(live) >= duration - 1, out.stdout
    assert all("p50" in ln and "errors" in ln and "breakers" in ln for ln in live), live
    assert any(ln.startswith("load: ") and " errors " in ln for ln in lines), out.stdout


def test_a_consul_that_is_not_loopback_is_refused() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "devstack.load", "--consul", "10.1.2.3:8500", "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2
    assert "non-loopback" in out.stderr, out.stderr
