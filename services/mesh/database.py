"""Each service's own SQLite database (database per service), used from asyncio."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite


async def fetch_one(
    conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()
) -> aiosqlite.Row | None:
    async with conn.execute(sql, tuple(params)) as cur:
        return await cur.fetchone()


async def fetch_all(
    conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()
) -> list[aiosqlite.Row]:
    async with conn.execute(sql, tuple(params)) as cur:
        return list(await cur.fetchall())


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Database:
    """A writer and a reader connection to one SQLite file in WAL mode.

    Writes go through ``transaction()`` (``BEGIN IMMEDIATE`` ... ``COMMIT``, or
    ``ROLLBACK`` when the block raises), one at a time; inside it, read with the
    module's ``fetch_one(conn, ...)``. A ``transaction()`` opened while the same task
    is already in one joins it, so a caller can wrap a store's writes, the events they
    cause (the outbox) and the record of the event that caused them in one commit.
    ``fetch_one``/``fetch_all`` on the database read on the reader connection, which sees
    only committed data, never a transaction in progress. (``:memory:`` has a single
    connection for both.) Reads on it run one at a time: SQLite keeps a connection's read
    snapshot while any of its statements is unfinished, so overlapping reads under load
    would pin an old snapshot and miss what was committed since.
    """

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.conn = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._current: contextvars.ContextVar[aiosqlite.Connection | None] = contextvars.ContextVar(
            f"transaction-{id(self)}", default=None
        )
        self._after_commit: contextvars.ContextVar[list[Callable[[], None]] | None] = (
            contextvars.ContextVar(f"after-commit-{id(self)}", default=None)
        )

    @classmethod
    async def open(cls, path: str | Path, schema: str) -> Database:
        """Open (or create) the database at ``path`` and apply ``schema`` (idempotent DDL)."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(str(path))
        await writer.executescript(schema)
        reader = writer if str(path) == ":memory:" else await _connect(str(path))
        return cls(writer, reader)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._current.get() is not None:  # joining the task's open transaction
            yield self.conn
            return
        async with self._write_lock:
            token = self._current.set(self.conn)
            callbacks: list[Callable[[], None]] = []
            hooks = self._after_commit.set(callbacks)
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    await self.conn.execute("ROLLBACK")
                    raise
                await self.conn.execute("COMMIT")
            finally:
                self._current.reset(token)
                self._after_commit.reset(hooks)
        for callback in callbacks:
            callback()

    def in_transaction(self) -> aiosqlite.Connection:
        """The connection of the transaction this task is in; RuntimeError if none."""
        conn = self._current.get()
        if conn is None:
            raise RuntimeError("not inside db.transaction()")
        return conn

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (not on rollback)."""
        callbacks = self._after_commit.get()
        if callbacks is None:
            raise RuntimeError("not inside db.transaction()")
        if callback not in callbacks:
            callbacks.append(callback)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._read_lock:
            return await fetch_one(self._reader, sql, params)

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._read_lock:
            return await fetch_all(self._reader, sql, params)

    async def close(self) -> None:
        if self._reader is not self.conn:
            await self._reader.close()
        await self.conn.close()
