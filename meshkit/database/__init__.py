"""Each service's own SQLite database (database per service), used from asyncio.

Statements run on the event loop's thread, at once. A statement here (an indexed row of a
small table, in WAL mode with ``synchronous=NORMAL``, so no fsync per commit) is short,
while handing each one to a worker thread, as aiosqlite does, costs several times more CPU
in thread and loop wake-ups than the statement itself (the measurements are in
bench/README.md). What could block the loop is
waiting for a lock, and that never happens here: another process's write lock (instances
of one service share the file) is waited for by retrying ``BEGIN IMMEDIATE`` with
``asyncio.sleep`` in between, and WAL readers never wait for writers. The one stall left
is SQLite's automatic checkpoint (every ~4 MiB of WAL), a few milliseconds.

The API stays asynchronous (``await conn.execute(...)``), so a driver that talks to a
server (PostgreSQL) could replace this one without touching the stores.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

Row = sqlite3.Row

# How long a transaction waits for another process's write lock before failing.
LOCK_TIMEOUT = 5.0


class Connection:
    """A sqlite3 connection with the awaitable methods the stores use."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    async def executescript(self, script: str) -> None:
        self.raw.executescript(script)

    def close(self) -> None:
        self.raw.close()


def _fetch_one(raw: sqlite3.Connection, sql: str, params: Iterable[Any]) -> Row | None:
    cur = raw.execute(sql, tuple(params))
    try:
        return cur.fetchone()
    finally:
        cur.close()  # an unfinished statement would pin the connection's read snapshot


async def fetch_one(conn: Connection, sql: str, params: Iterable[Any] = ()) -> Row | None:
    return _fetch_one(conn.raw, sql, params)


async def fetch_all(conn: Connection, sql: str, params: Iterable[Any] = ()) -> list[Row]:
    return conn.raw.execute(sql, tuple(params)).fetchall()


def _connect(path: str, busy_timeout_ms: int) -> Connection:
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw.row_factory = sqlite3.Row
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return Connection(raw)


class Database:
    """A writer and a reader connection to one SQLite file in WAL mode.

    Writes go through ``transaction()`` (``BEGIN IMMEDIATE`` ... ``COMMIT``, or
    ``ROLLBACK`` when the block raises), one at a time; inside it, read with the
    module's ``fetch_one(conn, ...)``. A ``transaction()`` opened while the same task
    is already in one joins it, so a caller can wrap a store's writes, the events they
    cause (the outbox) and the record of the event that caused them in one commit.
    ``fetch_one``/``fetch_all`` on the database read on the reader connection, which sees
    only committed data, never a transaction in progress. (``:memory:`` has a single
    connection for both.)
    """

    def __init__(self, writer: Connection, reader: Connection) -> None:
        self.conn = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._current: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
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
        # The writer never sleeps in SQLite on a lock (see _begin); applying the schema
        # at start-up may, as nothing else runs yet.
        writer = _connect(str(path), busy_timeout_ms=int(LOCK_TIMEOUT * 1000))
        writer.raw.executescript(schema)
        writer.raw.execute("PRAGMA busy_timeout=0")
        reader = writer if str(path) == ":memory:" else _connect(str(path), busy_timeout_ms=1000)
        return cls(writer, reader)

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write lock without blocking
        the event loop."""
        deadline = time.monotonic() + LOCK_TIMEOUT
        pause = 0.001
        while True:
            try:
                self.conn.raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        if self._current.get() is not None:  # joining the task's open transaction
            yield self.conn
            return
        async with self._write_lock:
            token = self._current.set(self.conn)
            callbacks: list[Callable[[], None]] = []
            hooks = self._after_commit.set(callbacks)
            try:
                await self._begin()
                try:
                    yield self.conn
                except BaseException:
                    self.conn.raw.execute("ROLLBACK")
                    raise
                self.conn.raw.execute("COMMIT")
            finally:
                self._current.reset(token)
                self._after_commit.reset(hooks)
        for callback in callbacks:
            callback()

    def in_transaction(self) -> Connection:
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

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await fetch_one(self._reader, sql, params)

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await fetch_all(self._reader, sql, params)

    async def close(self) -> None:
        if self._reader is not self.conn:
            self._reader.close()
        self.conn.close()
