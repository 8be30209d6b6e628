"""`make run BROKER=...` on each broker but NATS (tests/integration/test_readme.py runs it on
NATS): the summary names the broker, and the README's grpcurl walkthrough confirms an order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.readme import make_run, walk_readme

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["kafka", "rabbitmq", "sqs"])
def test_make_run_on_the_broker_confirms_the_readme_order(broker: str, tmp_path: Path) -> None:
    with make_run(tmp_path, {"BROKER": broker}, startup=180.0) as addresses:
        walk_readme(addresses, tmp_path / "certs" / "operator")
