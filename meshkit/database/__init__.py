"""Each service's own database (database per service), used from asyncio: SQLite (the
default, a file in the state directory) or PostgreSQL (``meshkit.database.postgres``),
picked by ``MeshConfig.database`` (``--database``, ``MESH_DATABASE``); see
docs/databases.md. Both give the stores the same API and the same guarantees: a
``transaction()`` that a task's nested ``transaction()`` joins, hooks run after its
commit, reads of committed data outside it, and the schema kept by versioned migrations
(``meshkit.database.migrations``) applied at open.

Portable SQL: ``?`` placeholders (the Postgres backend numbers them), ``INSERT ... ON
CONFLICT DO NOTHING``, and ``SELECT ... FOR UPDATE`` for a row read to decide a write:
Postgres locks the row until the commit; SQLite drops the clause, as its writers are one
at a time already (``BEGIN IMMEDIATE``).

SQLite: statements run on the event loop's thread, at once. A statement here (an indexed
row of a small table, in WAL mode with ``synchronous=NORMAL``, so no fsync per commit) is
short, while handing each one to a worker thread, as aiosqlite does, costs several times
more CPU in thread and loop wake-ups than the statement itself (the measurements are in
bench/README.md). What could block the loop is waiting for a lock, and that never happens
here: another process's write lock (instances of one service share the file) is waited
for by retrying ``BEGIN IMMEDIATE`` with ``asyncio.sleep`` in between, and WAL readers
never wait for writers. The one stall left is SQLite's automatic checkpoint (every ~4 MiB
of WAL), a few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from meshkit.database.migrations import RUNTIME, Migrations, migrate

if TYPE_CHECKING:
    from meshkit.config import MeshConfig

__all__ = [
    "RUNTIME",
    "Connection",
    "Database",
    "Migrations",
    "Row",
    "Schema",
    "SqliteDatabase",
    "fetch_all",
    "fetch_one",
    "migrate",
    "open_database",
]

# A row by column name (or position): sqlite3.Row or asyncpg.Record.
Row = Any

# What a database is opened with: versioned migrations (the runtime's are added), or, for
# SQLite only, a script of idempotent DDL (what tests of a single table use).
Schema = str | Migrations | Sequence[Migrations]

# How long a transaction waits for another process's write lock before failing (SQLite).
LOCK_TIMEOUT = 5.0

BACKENDS = ("sqlite", "postgres")


class Cursor(Protocol):
    """What ``execute`` returns: how many rows the statement changed."""

    rowcount: int


class Connection:
    """A connection in a transaction, with the awaitable methods the stores use."""

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> Cursor:
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Any:
        raise NotImplementedError

    async def executescript(self, script: str) -> None:
        """Several statements, in the open transaction (none is committed on its own)."""
        raise NotImplementedError

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        raise NotImplementedError

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def savepoint(self) -> Any:
        """An async context manager: a savepoint in the open transaction, rolled back to
        (the transaction going on) when the block raises, released when it ends."""
        raise NotImplementedError

    def transaction_open(self) -> bool:
        """Whether the transaction is still open (SQLite rolls a whole transaction back on
        some errors, e.g. a full disk: what follows would run outside it)."""
        return True


async def fetch_one(conn: Connection, sql: str, params: Iterable[Any] = ()) -> Row | None:
    return await conn.fetch_one(sql, params)


async def fetch_all(conn: Connection, sql: str, params: Iterable[Any] = ()) -> list[Row]:
    return await conn.fetch_all(sql, params)


class Database:
    """One service's database; ``dialect`` says which backend it is.

    Writes go through ``transaction()`` (commit, or rollback when the block raises);
    inside it, read with the module's ``fetch_one(conn, ...)``. A ``transaction()``
    opened while the same task is already in one joins it, so a caller can wrap a store's
    writes, the events they cause (the outbox) and the record of the event that caused
    them in one commit. ``fetch_one``/``fetch_all`` on the database read committed data,
    never a transaction in progress.
    """

    dialect: ClassVar[str]

    def __init__(self) -> None:
        self._current: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            f"transaction-{id(self)}", default=None
        )
        self._after_commit: contextvars.ContextVar[list[Callable[[], None]] | None] = (
            contextvars.ContextVar(f"after-commit-{id(self)}", default=None)
        )

    @classmethod
    async def open(cls, path: str | Path, schema: Schema) -> SqliteDatabase:
        """The SQLite database at ``path`` (made if new), its schema applied."""
        return await SqliteDatabase.open(path, schema)

    def _transaction(self) -> Any:
        """An async context manager: a connection in a new transaction, committed at the
        end of the block or rolled back when it raises."""
        raise NotImplementedError

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        current = self._current.get()
        if current is not None:  # joining the task's open transaction
            yield current
            return
        callbacks: list[Callable[[], None]] = []
        async with self._transaction() as conn:
            token = self._current.set(conn)
            hooks = self._after_commit.set(callbacks)
            try:
                yield conn
            finally:
                self._current.reset(token)
                self._after_commit.reset(hooks)
        for callback in callbacks:
            callback()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Connection]:
        """A part of the task's open transaction that can fail alone: when the block raises,
        its writes are undone (and the after-commit hooks it added dropped) while the
        transaction goes on; otherwise they commit with it. RuntimeError if none is open."""
        conn = self.in_transaction()
        outer = self._after_commit.get()
        assert outer is not None
        inner: list[Callable[[], None]] = []
        hooks = self._after_commit.set(inner)
        try:
            async with conn.savepoint():
                yield conn
        finally:
            self._after_commit.reset(hooks)
        for callback in inner:
            if callback not in outer:
                outer.append(callback)

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
        raise NotImplementedError

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def with_runtime(schema: Migrations | Sequence[Migrations]) -> list[Migrations]:
    """The runtime's migrations (outbox, processed events, saga steps) first, then the
    service's own."""
    sets = [schema] if isinstance(schema, Migrations) else list(schema)
    return [RUNTIME, *(m for m in sets if m.component != RUNTIME.component)]


async def open_database(config: MeshConfig, schema: Schema) -> Database:
    """The database ``config`` names (``database``: sqlite at ``db_path``, postgres at
    ``database_url``), its migrations applied."""
    if config.database == "sqlite":
        return await SqliteDatabase.open(config.db_path, schema)
    if config.database == "postgres":
        if not config.database_url:
            raise ValueError(
                "database_url (--database-url, MESH_DATABASE_URL) is required with"
                " database=postgres: a postgresql://<role>@<host>:<port>/<database> DSN"
            )
        if isinstance(schema, str):
            raise ValueError("a schema script is for SQLite only: Postgres needs Migrations")
        from meshkit.database.postgres import PostgresDatabase

        return await PostgresDatabase.connect(config.database_url, schema)
    raise ValueError(f"database {config.database!r}: expected one of {', '.join(BACKENDS)}")


# --- SQLite -------------------------------------------------------------------------------


def _sqlite(sql: str) -> str:
    """SQLite's text of a portable statement: without ``FOR UPDATE`` (its writers hold
    the database's write lock from ``BEGIN IMMEDIATE`` on)."""
    return sql.replace(" FOR UPDATE", "") if "FOR UPDATE" in sql else sql


def statements(script: str) -> list[str]:
    """The complete statements of an SQL script, each with its ``;``."""
    done: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                done.append(pending.strip())
            pending = ""
    return done


class SqliteConnection(Connection):
    """A sqlite3 connection with the awaitable methods the stores use."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(_sqlite(sql), tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> sqlite3.Cursor:
        return self.raw.executemany(_sqlite(sql), rows)

    async def executescript(self, script: str) -> None:
        # One statement at a time: sqlite3's executescript would commit the open
        # transaction first.
        for statement in statements(script):
            self.raw.execute(statement)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        cur = self.raw.execute(_sqlite(sql), tuple(params))
        try:
            return cur.fetchone()
        finally:
            cur.close()  # an unfinished statement would pin the connection's read snapshot

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self.raw.execute(_sqlite(sql), tuple(params)).fetchall()

    def transaction_open(self) -> bool:
        return self.raw.in_transaction

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Connection]:
        self.raw.execute("SAVEPOINT mesh_savepoint")
        try:
            yield self
        except BaseException:
            if self.raw.in_transaction:  # else SQLite rolled it all back: the caller sees
                self.raw.execute("ROLLBACK TO mesh_savepoint")
                self.raw.execute("RELEASE mesh_savepoint")
            raise
        self.raw.execute("RELEASE mesh_savepoint")

    def close(self) -> None:
        self.raw.close()


CACHE_KIB = 256


def _connect(path: str, busy_timeout_ms: int) -> SqliteConnection:
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw.row_factory = sqlite3.Row
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    # A page cache of 256 KiB, not SQLite's 2 MiB: a service's hot pages fit, the rest is
    # one read from the OS's cache away, and the 2 MiB per connection was most of what a
    # service grew by under load (issue 20's memory target).
    raw.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return SqliteConnection(raw)


class SqliteDatabase(Database):
    """A writer and a reader connection to one SQLite file in WAL mode.

    Transactions are ``BEGIN IMMEDIATE`` ... ``COMMIT``, one at a time in a process, and
    one at a time across the processes that share the file (instances of one service):
    every transaction is serializable. The reader connection sees only committed data.
    (``:memory:`` has a single connection for both.)
    """

    dialect = "sqlite"

    def __init__(self, writer: SqliteConnection, reader: SqliteConnection) -> None:
        super().__init__()
        self.conn = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, schema: Schema) -> SqliteDatabase:
        """Open (or create) the database at ``path`` and apply ``schema``: its migrations
        (with the runtime's), or a script of idempotent DDL."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The writer never sleeps in SQLite on a lock (see _begin); applying the schema
        # at start-up may, as nothing else runs yet.
        writer = _connect(str(path), busy_timeout_ms=int(LOCK_TIMEOUT * 1000))
        reader = writer if str(path) == ":memory:" else _connect(str(path), busy_timeout_ms=1000)
        db = cls(writer, reader)
        if isinstance(schema, str):
            writer.raw.executescript(schema)
        else:
            await migrate(db, with_runtime(schema))
        writer.raw.execute("PRAGMA busy_timeout=0")
        return db

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
    async def _transaction(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            await self._begin()
            try:
                yield self.conn
            except BaseException:
                self.conn.raw.execute("ROLLBACK")
                raise
            self.conn.raw.execute("COMMIT")

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self._reader.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self._reader.fetch_all(sql, params)

    async def close(self) -> None:
        if self._reader is not self.conn:
            self._reader.close()
        self.conn.close()
