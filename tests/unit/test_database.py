"""The database wrapper: transactions, their hooks, and waiting for another writer."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from meshkit import database
from meshkit.database import Database, fetch_one

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


async def test_a_transaction_commits_or_rolls_back_and_runs_its_hooks_after_commit(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "t.db", SCHEMA)
    ran: list[str] = []
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
        db.after_commit(lambda: ran.append("a"))
        assert await db.fetch_one("SELECT v FROM t WHERE k = 'a'") is None  # not committed
        assert ran == []
    assert ran == ["a"]
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (?, ?)", ("b", 2))
            db.after_commit(lambda: ran.append("b"))
            raise RuntimeError("boom")
    assert ran == ["a"]
    rows = await db.fetch_all("SELECT k FROM t ORDER BY k")
    assert [r["k"] for r in rows] == ["a"]
    await db.close()


async def test_a_nested_transaction_joins_the_open_one(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "t.db", SCHEMA)
    async with db.transaction() as outer:
        async with db.transaction() as inner:
            assert inner is outer
            await inner.execute("INSERT INTO t VALUES ('n', 1)")
        row = await fetch_one(outer, "SELECT v FROM t WHERE k = 'n'")
        assert row is not None and row["v"] == 1
    await db.close()


class CountingBegins:
    """A sqlite3 connection that counts its ``BEGIN IMMEDIATE`` attempts."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.begins = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE":
            self.begins += 1
        return self.raw.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


async def test_another_writer_is_waited_for_without_blocking_the_loop(tmp_path: Path) -> None:
    """Two Databases on one file stand for two instances of a service: the second one's
    transaction waits for the first to commit, while the event loop keeps running."""
    first = await Database.open(tmp_path / "t.db", SCHEMA)
    second = await Database.open(tmp_path / "t.db", SCHEMA)
    spy = CountingBegins(second.conn.raw)
    second.conn.raw = spy  # type: ignore[assignment]
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with first.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES ('first', 1)")
            holding.set()
            await release.wait()

    async def wait_then_write() -> None:
        async with second.transaction() as conn:
            await conn.execute("UPDATE t SET v = v + 1 WHERE k = 'first'")

    holder = asyncio.create_task(hold())
    await holding.wait()
    writer = asyncio.create_task(wait_then_write())
    # While the writer waits for the lock, the loop keeps running this task: it wakes
    # every 10 ms, and no wake-up is held up anywhere near a lock wait (a writer waiting
    # inside SQLite would stall the loop up to LOCK_TIMEOUT, 5 s, then fail "locked").
    gaps = []
    last = time.monotonic()
    for _ in range(20):
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        assert not writer.done(), "the second writer did not wait for the first one"
    assert max(gaps) < database.LOCK_TIMEOUT / 5, gaps
    # It was waiting for the lock all along: refused again and again, and retried.
    assert spy.begins >= 2, spy.begins
    release.set()  # only this task, on the loop, can let the first writer commit
    await asyncio.wait_for(asyncio.gather(holder, writer), 5)
    row = await second.fetch_one("SELECT v FROM t WHERE k = 'first'")
    assert row is not None and row["v"] == 2
    await first.close()
    await second.close()


async def test_a_writer_held_too_long_fails_the_waiting_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "LOCK_TIMEOUT", 0.1)
    first = await Database.open(tmp_path / "t.db", SCHEMA)
    second = await Database.open(tmp_path / "t.db", SCHEMA)
    async with first.transaction():
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            async with second.transaction():
                pass
    await first.close()
    await second.close()
