"""Fixtures of the Postgres tier: a cluster of its own (devstack.postgres) for the
backend's and the roles' tests, and the helpers that look into a stack's Postgres
databases the way the other tiers look into its SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.postgres import PostgresCluster

# The tables the order invariants read (tests.support.orders.invariants), per service.
INVARIANT_TABLES = {
    "order": ("order_views", "order_state"),
    "inventory": ("stock", "reservations"),
    "payment": ("payments",),
    "shipping": ("shipments",),
}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster with the databases and roles ``alpha`` and ``beta``, for the
    tier's tests of the backend, the migrations and the roles (each empties the database
    it uses first)."""
    state = tmp_path_factory.mktemp("postgres")
    pg = PostgresCluster(
        data_dir=state / "postgres",
        auth_dir=state / "postgres-auth",
        services=("alpha", "beta"),
        log_path=state / "postgres.log",
    )
    pg.start()
    yield pg
    pg.discard()


async def copy_to_sqlite(pg: PostgresCluster, into: Path) -> Path:
    """The tables of ``INVARIANT_TABLES`` copied from each service's Postgres database into
    ``<into>/data/<service>.db``, as a SQLite stack keeps them: the order invariants then
    read them as they read any stack's. Returns ``into`` (a stack's ``state``)."""
    (into / "data").mkdir(parents=True, exist_ok=True)
    for service, tables in INVARIANT_TABLES.items():
        path = into / "data" / f"{service}.db"
        path.unlink(missing_ok=True)
        conn = await pg.connect_as_superuser(service)
        lite = sqlite3.connect(path)
        try:
            for table in tables:
                query = await conn.prepare(f"SELECT * FROM {table}")
                columns = [a.name for a in query.get_attributes()]
                lite.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
                lite.executemany(
                    f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})",
                    [tuple(row) for row in await query.fetch()],
                )
            lite.commit()
        finally:
            lite.close()
            await conn.close()
    return into
