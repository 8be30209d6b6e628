"""Versioned migrations, applied at open, on both backends: once each, in order, a new one
on the next start, concurrent starts taking turns, a newer database refused, and SQLite
databases made before there were migrations opening as they are."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from devstack.postgres import PostgresCluster
from meshkit.database import RUNTIME, Database, Migrations, SqliteDatabase
from meshkit.database.postgres import PostgresDatabase
from services.inventory.store import SCHEMA as INVENTORY
from services.inventory.store import InventoryStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def dsn(cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """beta's database, emptied, and beta's DSN and password file."""
    conn = await cluster.connect_as_superuser("beta")
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION beta")
    finally:
        await conn.close()
    env = cluster.env("beta")
    monkeypatch.setenv("PGPASSFILE", env["PGPASSFILE"])
    return env["MESH_DATABASE_URL"]


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(sql)


async def open_db(backend: str, dsn: str, tmp_path: Path, schema: Migrations) -> Database:
    if backend == "postgres":
        return await PostgresDatabase.connect(dsn, schema)
    return await SqliteDatabase.open(tmp_path / "t.db", schema)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_each_version_is_applied_once_and_a_new_one_on_the_next_start(
    backend: str, dsn: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    write(directory, "0001_init.sql", "CREATE TABLE notes (id TEXT PRIMARY KEY);")
    notes = Migrations("notes", directory)
    db = await open_db(backend, dsn, tmp_path, notes)
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO notes VALUES (?)", ("n1",))
    await db.close()
    # A second release adds a column (one file per dialect: their SQL differs here).
    write(directory, "0002_note_text.sqlite.sql", "ALTER TABLE notes ADD COLUMN body TEXT;")
    write(directory, "0002_note_text.postgres.sql", "ALTER TABLE notes ADD COLUMN body TEXT;")
    db = await open_db(backend, dsn, tmp_path, notes)
    async with db.transaction() as conn:
        await conn.execute("UPDATE notes SET body = ? WHERE id = ?", ("hello", "n1"))
    rows = await db.fetch_all(
        "SELECT component, version, name FROM schema_migrations ORDER BY component, version"
    )
    assert [(r["component"], r["version"], r["name"]) for r in rows] == [
        ("mesh", 1, "init"),
        ("notes", 1, "init"),
        ("notes", 2, "note_text"),
    ]
    row = await db.fetch_one("SELECT body FROM notes WHERE id = 'n1'")
    assert row is not None and row["body"] == "hello"
    await db.close()
    db = await open_db(backend, dsn, tmp_path, notes)  # nothing left to apply
    assert len(await db.fetch_all("SELECT * FROM schema_migrations")) == 3
    await db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_of_a_newer_release_is_refused(
    backend: str, dsn: str, tmp_path: Path
) -> None:
    db = await open_db(backend, dsn, tmp_path, INVENTORY)
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO schema_migrations VALUES ('inventory', 7, 'later', 0)", ())
    await db.close()
    with pytest.raises(RuntimeError, match="inventory migration 0007, which this code does not"):
        await open_db(backend, dsn, tmp_path, INVENTORY)


async def test_instances_starting_together_migrate_once(dsn: str) -> None:
    """Four instances of a service opening a new database at once: one applies the
    migrations, the others wait for it and find them applied."""
    dbs = await asyncio.gather(*(PostgresDatabase.connect(dsn, INVENTORY) for _ in range(4)))
    seeded = await asyncio.gather(*(InventoryStore(db).seed_if_empty({"S": 1}) for db in dbs))
    assert sorted(seeded) in ([0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1])
    rows = await dbs[0].fetch_all("SELECT component, version FROM schema_migrations")
    assert sorted((r["component"], r["version"]) for r in rows) == [
        ("inventory", 1),
        ("mesh", 1),
    ]
    stock = await dbs[0].fetch_all("SELECT * FROM stock")
    assert [(r["sku"], r["available"]) for r in stock] == [("S", 1)]
    for db in dbs:
        await db.close()


async def test_a_sqlite_database_made_before_migrations_opens_as_it_is(tmp_path: Path) -> None:
    """A service's SQLite file from before migrations (its tables made by the same DDL,
    no schema_migrations) opens with its rows, and is recorded at version 1."""
    path = tmp_path / "inventory.db"
    old = sqlite3.connect(path)
    for migrations in (RUNTIME, INVENTORY):
        old.executescript(migrations.steps("sqlite")[0].sql)
    old.execute("INSERT INTO stock (sku, available, update_time) VALUES ('OLD', 3, 0)")
    old.commit()
    old.close()
    db = await SqliteDatabase.open(path, INVENTORY)
    stock = await InventoryStore(db).get_stock("OLD")
    assert stock is not None and stock.available == 3
    rows = await db.fetch_all("SELECT component, version FROM schema_migrations")
    assert sorted((r["component"], r["version"]) for r in rows) == [("inventory", 1), ("mesh", 1)]
    await db.close()


async def test_a_sqlite_migration_runs_inside_its_transaction(tmp_path: Path) -> None:
    """SQLite: a migration's statements run one by one in the open transaction (sqlite3's
    executescript would commit it first), so a failing one leaves nothing behind; and a
    portable ``FOR UPDATE`` is dropped (SQLite's writers are one at a time)."""
    directory = tmp_path / "migrations"
    write(directory, "0001_init.sql", "CREATE TABLE a (k TEXT);\nCREATE TABLE a (k TEXT);")
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        await SqliteDatabase.open(tmp_path / "t.db", Migrations("broken", directory))
    db = await SqliteDatabase.open(tmp_path / "t.db", "SELECT 1;")
    tables = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert [r["name"] for r in tables] == []  # not even schema_migrations
    async with db.transaction() as conn:
        await conn.execute("CREATE TABLE b (k TEXT PRIMARY KEY)")
        await conn.execute("INSERT INTO b VALUES (?)", ("x",))
        row = await conn.fetch_one("SELECT k FROM b WHERE k = ? FOR UPDATE", ("x",))
        assert row is not None and row["k"] == "x"
    await db.close()


def test_migration_files_are_checked(tmp_path: Path) -> None:
    def broken(*files: str) -> Migrations:
        directory = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        for name in files:
            write(directory, name, "SELECT 1;")
        return Migrations("x", directory)

    with pytest.raises(ValueError, match=r"NNNN_<name>\.sql"):
        broken("1_init.sql").steps("sqlite")
    with pytest.raises(ValueError, match="lacks postgres"):
        broken("0001_init.sqlite.sql").steps("sqlite")
    with pytest.raises(ValueError, match="without gaps"):
        broken("0001_init.sql", "0003_later.sql").steps("postgres")
    with pytest.raises(ValueError, match="for both dialects and one per dialect"):
        broken("0001_init.sql", "0001_init.postgres.sql", "0001_init.sqlite.sql").steps("sqlite")
    both = broken("0001_init.sqlite.sql", "0001_init.postgres.sql", "0002_more.sql")
    assert [s.version for s in both.steps("postgres")] == [1, 2]
