"""Shared fixtures: real components on free loopback ports, started once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.consul import ConsulAgent

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulAgent]:
    """A real Consul dev agent (Connect on) for the whole session."""
    log = tmp_path_factory.mktemp("consul") / "consul.log"
    with ConsulAgent(log_path=log) as agent:
        yield agent
