"""`make run DATABASE=postgres`: the README's grpcurl walkthrough confirms an order with
every service on its own database of one PostgreSQL cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.readme import make_run, walk_readme

pytestmark = pytest.mark.integration


def test_make_run_on_postgres_confirms_the_readme_order(tmp_path: Path) -> None:
    with make_run(tmp_path, {"DATABASE": "postgres"}, startup=180.0) as addresses:
        walk_readme(addresses, tmp_path / "certs" / "operator")
