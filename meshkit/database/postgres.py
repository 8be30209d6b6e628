"""The PostgreSQL backend of a service's database: asyncpg with a pool of connections.

A transaction takes a connection from the pool for its duration (READ COMMITTED), so
one instance runs several at once, and instances of a service share the database. Where
a store reads a row to decide a write, it reads it ``FOR UPDATE``: the row stays locked
until the commit, and a concurrent transaction that wants it waits and then sees the
committed row (two reservations of the last item: the second finds none left). Rows that
must exist once (a payment per order, an event id processed) have a unique key, so the
loser of a race for one fails its transaction, whose effects all roll back, with
``meshkit.errors.Aborted`` (ABORTED to a client: try again); the event it was handling is
delivered again and found handled. A deadlock (two transactions locking rows in opposite
orders) fails one of them the same way. Reads outside a transaction see
committed data only.

The statements are the stores' portable SQL: ``?`` placeholders are numbered (``$1``,
``$2``, ...) once per statement text, and asyncpg keeps each connection's prepared
statements.

The password is never in the DSN a service is given: libpq's password file
(``PGPASSFILE``, which asyncpg reads) holds it, one line per role, 0600.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from meshkit.database import Connection, Database, Row, with_runtime
from meshkit.database.migrations import Migrations, migrate
from meshkit.errors import Aborted

log = logging.getLogger("mesh.database")

# What a transaction can lose to a concurrent one: it is rolled back, and raised as
# ``Aborted`` (gRPC's ABORTED: try again), its cause attached. An event handler's event is
# delivered again; a client's call may be retried.
CONFLICTS = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

# Connections per instance: a transaction holds one; reads outside a transaction take one
# briefly. Four services with a few instances each stay far below max_connections.
POOL_MIN = 2
POOL_MAX = 10


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders (outside quoted literals) as ``$1, $2, ...``."""
    parts = sql.split("'")
    n = 0
    for i in range(0, len(parts), 2):  # the even parts are outside literals
        pieces = parts[i].split("?")
        out = pieces[0]
        for piece in pieces[1:]:
            n += 1
            out += f"${n}{piece}"
        parts[i] = out
    return "'".join(parts)


class Result:
    """What ``execute`` returns: the rows a statement changed (its command tag's count)."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount

    @classmethod
    def of(cls, status: str) -> Result:
        """From a command tag: ``UPDATE 1``, ``INSERT 0 1``, ``DELETE 0``, ``CREATE TABLE``."""
        last = status.rsplit(" ", 1)[-1]
        return cls(int(last) if last.isdigit() else 0)


def _aborted(exc: Exception) -> Aborted:
    constraint = getattr(exc, "constraint_name", None)
    return Aborted(
        f"the change conflicted with a concurrent one ({type(exc).__name__}"
        f"{' on ' + constraint if constraint else ''}); nothing was changed: try again"
    )


class PostgresConnection(Connection):
    """An asyncpg connection in a transaction, with the stores' portable API."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> Result:
        return Result.of(await self.raw.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Result:
        """One statement over ``rows``, pipelined (asyncpg reports no count: -1)."""
        await self.raw.executemany(numbered(sql), [tuple(row) for row in rows])
        return Result(-1)

    async def executescript(self, script: str) -> None:
        await self.raw.execute(script)  # no arguments: the simple protocol, many statements

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.raw.fetchrow(numbered(sql), *params)

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self.raw.fetch(numbered(sql), *params))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Connection]:
        """asyncpg's nested transaction: a savepoint. A conflict inside it (a unique key
        taken by a concurrent transaction, a deadlock) is raised as ``Aborted``, rolled
        back to the savepoint only."""
        try:
            async with self.raw.transaction():
                yield self
        except CONFLICTS as exc:
            raise _aborted(exc) from exc


async def _reset(conn: asyncpg.Connection) -> None:
    """A connection back in the pool: only a transaction left open is ended. (asyncpg's
    default reset, a round trip at every release, undoes session state that nothing here
    sets: settings, LISTENs, advisory locks held past a transaction.)"""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresDatabase(Database):
    """A service's database on a PostgreSQL server, through a pool of connections."""

    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self.pool = pool

    @classmethod
    async def connect(
        cls,
        dsn: str,
        schema: Migrations | Sequence[Migrations],
        *,
        min_size: int = POOL_MIN,
        max_size: int = POOL_MAX,
    ) -> PostgresDatabase:
        """A pool to ``dsn`` (``postgresql://<role>@<host>:<port>/<database>``; the
        password from ``PGPASSFILE``), and the migrations (with the runtime's) applied."""
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_reset)
        db = cls(pool)
        try:
            applied = await migrate(db, with_runtime(schema))
        except BaseException:
            await pool.close()
            raise
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        return db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        try:
            async with self.pool.acquire() as raw, raw.transaction():
                yield PostgresConnection(raw)
        except CONFLICTS as exc:  # rolled back: the caller may try again
            raise _aborted(exc) from exc

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.pool.fetchrow(numbered(sql), *params)

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return list(await self.pool.fetch(numbered(sql), *params))

    async def close(self) -> None:
        await self.pool.close()
