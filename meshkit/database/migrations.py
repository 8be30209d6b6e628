"""Versioned schema migrations, applied when a database is opened, for both backends.

A component (the runtime, a service) keeps its migrations as files in a directory of its
own: ``0001_init.sql``, ``0002_<what>.sql``, ... in version order; where SQLite's and
Postgres' SQL differ, a version has one file per dialect instead
(``0001_init.sqlite.sql`` and ``0001_init.postgres.sql``). ``schema_migrations`` records
which (component, version) a database has; ``migrate`` applies the missing ones in order,
all in one transaction with the record of each, so a start that fails leaves the schema
as it was. Instances that start together take turns: SQLite's ``BEGIN IMMEDIATE``,
Postgres' advisory lock. A database with a version its code does not know (made by a
newer release) is refused rather than used.

The runtime's migrations (``RUNTIME``: the outbox, the processed events, the saga steps
of ``meshkit.events``) go into every service's database first. A version once released
is never edited: a change is a new version.

SQLite databases made before there were migrations hold the tables of each ``0001``
already: every ``0001`` creates with ``IF NOT EXISTS``, so such a database opens, and
gets its ``schema_migrations`` rows then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshkit.times import now_micros

if TYPE_CHECKING:
    from collections.abc import Sequence

    from meshkit.database import Database

DIALECTS = ("sqlite", "postgres")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(sqlite|postgres))?\.sql$")

SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  TEXT NOT NULL,    -- whose migrations: mesh, inventory, ...
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,    -- the file's name, without version and dialect
    apply_time BIGINT NOT NULL,  -- epoch microseconds
    PRIMARY KEY (component, version)
);
"""

# Postgres: the lock that makes concurrent starts take turns (pg_advisory_xact_lock's key).
_LOCK_KEY = 0x6D657368  # "mesh"


@dataclass(frozen=True)
class Step:
    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class Migrations:
    """The migrations of ``component`` in ``directory``."""

    component: str
    directory: Path

    def _files(self) -> dict[int, tuple[str, dict[str | None, Path]]]:
        """version -> its name and its files by dialect (None: both); bad names, a
        version without a file for a dialect, and gaps refused. Read at each open."""
        by_version: dict[int, dict[str | None, Path]] = {}
        names: dict[int, str] = {}
        if not self.directory.is_dir():
            raise FileNotFoundError(f"{self.component}: no migrations directory {self.directory}")
        for path in sorted(self.directory.iterdir()):
            if path.suffix != ".sql":
                continue
            m = _FILE.match(path.name)
            if m is None:
                raise ValueError(
                    f"{path}: a migration is named NNNN_<name>.sql or"
                    " NNNN_<name>.<sqlite|postgres>.sql (lowercase name, 4-digit version)"
                )
            version, name, dialect = int(m.group(1)), m.group(2), m.group(3)
            if names.setdefault(version, name) != name:
                raise ValueError(f"{path}: version {version} has two names")
            by_version.setdefault(version, {})[dialect] = path
        for version, files in by_version.items():
            if None in files and len(files) > 1:
                raise ValueError(
                    f"{self.directory}: version {version:04d} has a file for both dialects"
                    " and one per dialect; keep one or the other"
                )
            if None not in files and set(files) != set(DIALECTS):
                missing = ", ".join(d for d in DIALECTS if d not in files)
                raise ValueError(f"{self.directory}: version {version:04d} lacks {missing}")
        if sorted(by_version) != list(range(1, len(by_version) + 1)):
            raise ValueError(f"{self.directory}: versions must run 0001, 0002, ... without gaps")
        return {version: (names[version], files) for version, files in by_version.items()}

    def steps(self, dialect: str) -> list[Step]:
        """The migrations for ``dialect``, in version order."""
        if dialect not in DIALECTS:
            raise ValueError(f"dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")
        return [
            Step(version, name, (files.get(None) or files[dialect]).read_text())
            for version, (name, files) in sorted(self._files().items())
        ]


# The runtime's own tables, in every service's database.
RUNTIME = Migrations("mesh", Path(__file__).resolve().parent.parent / "migrations")


async def migrate(db: Database, sets: Sequence[Migrations]) -> list[str]:
    """Applies what ``db`` lacks of ``sets`` (in that order); returns what it applied
    (``component/0002_name``)."""
    applied: list[str] = []
    async with db.transaction() as conn:
        if db.dialect == "postgres":
            await conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        await conn.executescript(SCHEMA_MIGRATIONS)
        rows = await conn.fetch_all("SELECT component, version FROM schema_migrations")
        have: dict[str, set[int]] = {}
        for row in rows:
            have.setdefault(row["component"], set()).add(int(row["version"]))
        for migrations in sets:
            steps = migrations.steps(db.dialect)
            known = {step.version for step in steps}
            newer = sorted(have.get(migrations.component, set()) - known)
            if newer:
                raise RuntimeError(
                    f"the database has {migrations.component} migration {newer[-1]:04d},"
                    f" which this code does not have (its newest is {max(known, default=0):04d}):"
                    " it was made by a newer release"
                )
            for step in steps:
                if step.version in have.get(migrations.component, set()):
                    continue
                await conn.executescript(step.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, apply_time)"
                    " VALUES (?, ?, ?, ?)",
                    (migrations.component, step.version, step.name, now_micros()),
                )
                applied.append(f"{migrations.component}/{step.version:04d}_{step.name}")
    return applied
