"""The Go, Node.js and Java clients generated from protos/ place an order through the live
mesh (Consul discovery, mTLS as ``storefront``, deadlines) and each sees it CONFIRMED.

A toolchain that is absent skips its example, except under CI (``CI`` set), where every
toolchain is expected and its absence is a failure. Build caches: see examples.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.consul import ConsulAgent
from devstack.services import ServiceProcess
from tests.conftest import ROOT
from tests.polyglot.examples import EXAMPLES, Example, mesh_env

pytestmark = pytest.mark.integration

IDENTITY = "storefront"  # infra/consul/intentions/ allow storefront -> order


@pytest.fixture(scope="module")
def storefront_certs(consul: ConsulAgent, state_dir: Path) -> Path:
    """A leaf for ``storefront`` from the mesh CA, issued the way the README shows."""
    consul.service_token(IDENTITY)  # its Consul identity, which the signer checks
    cmd = [sys.executable, "-m", "meshkit.tools.certs", "--state-dir", str(state_dir)]
    cmd += ["certs", "issue", IDENTITY, "--consul", consul.http_addr]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    certs = state_dir / "certs" / IDENTITY
    assert {p.name for p in certs.iterdir()} >= {"cert.pem", "key.pem", "ca.pem"}
    return certs


@pytest.mark.timeout(600)  # a cold build may fetch from its registry
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.lang)
def test_example_places_an_order_and_sees_it_confirmed(
    example: Example,
    tmp_path_factory: pytest.TempPathFactory,
    consul: ConsulAgent,
    services: dict[str, ServiceProcess],
    storefront_certs: Path,
) -> None:
    example.require_tools()
    started = time.monotonic()
    command = example.build(tmp_path_factory.mktemp(f"client-{example.lang}"))
    built = time.monotonic()
    out = subprocess.run(
        command,
        env=mesh_env(consul.http_addr, consul.service_token(IDENTITY), storefront_certs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(
        f"{example.lang}: built in {built - started:.1f} s, ran in {time.monotonic() - built:.1f} s"
    )
    print(out.stdout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    assert f"{example.lang}: order ord_" in out.stdout
    assert "is ORDER_STATUS_CONFIRMED" in out.stdout
