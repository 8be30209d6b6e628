"""One PostgreSQL 15 cluster on loopback, a database and a role per service.

``PostgresCluster(data_dir, services=...)`` initialises the cluster on first start
(``initdb``: UTF-8, the C locale, so text sorts by bytes as in SQLite; scram-sha-256 for
every connection) and starts ``postgres`` on 127.0.0.1 (no Unix socket), on a free port or
make run's 5432 when it is free. Then it provisions, idempotently:

- ``devstack``, the cluster's only superuser: devstack's own, never a service's;
- per service, a role of its name (LOGIN, nothing more) with a password of its own, and a
  database of its name owned by it; ``CONNECT`` on it is revoked from ``PUBLIC``, so no
  other role may even connect to it ("permission denied for database");
- per service, a libpq password file (``<auth>/<service>.pgpass``, 0600: its own role's
  line only), which a service reads through ``PGPASSFILE``: no password on a command line or in
  an environment variable.

``env(service)`` is what a stack's launcher gives an instance: ``MESH_DATABASE=postgres``,
``MESH_DATABASE_URL`` (``postgresql://<service>@127.0.0.1:<port>/<service>``) and
``PGPASSFILE``.

PostgreSQL refuses to run as root. Run by root (as here), the cluster runs as ``nobody``:
its data directory is made theirs, in the state directory when ``nobody`` can reach it,
else (a root-only tmp directory, as pytest's) in a private directory of /tmp removed by
``discard()``. The passwords stay root's (``<state>/postgres-auth``).

Durability as the SQLite databases have it (WAL, ``synchronous=NORMAL``): every commit
is in the WAL, which is flushed in the background (``synchronous_commit=off``), so a crash
of a service or of Postgres loses nothing committed; a crash of the machine may lose the
last fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import asyncpg

from devstack.ports import free_port
from devstack.process import ChildProcess, dying_with_parent
from meshkit.security.secrets import write_secret

SUPERUSER = "devstack"
DEFAULT_PORT = 5432  # make run's, when it is free
RUN_AS = "nobody"  # who runs the cluster when devstack runs as root
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# The server's settings (besides port and address): see the module's doc.
SETTINGS = {
    "unix_socket_directories": "",
    "max_connections": "200",
    "synchronous_commit": "off",
    "password_encryption": "scram-sha-256",
    "log_min_messages": "warning",
}

HBA = """\
# meshkit devstack: TCP on loopback only, a password (SCRAM) for everyone. Which database
# a role may use is the database's CONNECT privilege (revoked from PUBLIC, granted to its
# own role).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
"""


def pg_binary(name: str) -> str:
    """``initdb``, ``postgres``, ...: on the PATH, else Debian's PostgreSQL 15 place."""
    found = shutil.which(name)
    if found:
        return found
    debian = Path("/usr/lib/postgresql/15/bin") / name
    if debian.exists():
        return str(debian)
    raise FileNotFoundError(
        f"{name} not found on PATH nor in /usr/lib/postgresql/15/bin:"
        " install PostgreSQL 15 (make setup-all runs scripts/install-postgres.sh)"
    )


def _run_async(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to its end on a loop of its own thread (the caller may be on one)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="postgres-provision")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether user ``uid`` (group ``gid``) may traverse every directory down to ``path``."""
    for d in [*reversed(path.parents), path]:
        if not d.exists():
            break
        st = d.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


@dataclass(kw_only=True)
class PostgresCluster(ChildProcess):
    """A PostgreSQL cluster of the stack in ``data_dir`` (the module's doc)."""

    name: ClassVar[str] = "postgres"
    stop_signal: ClassVar[int] = signal.SIGINT  # "fast" shutdown: clients are cut off
    ready_timeout: ClassVar[float] = 60.0
    poll_interval: ClassVar[float] = 0.2

    data_dir: Path
    auth_dir: Path
    services: tuple[str, ...] = ()
    port: int = 0
    fixed_port: bool = False  # make run's 5432 if it is free
    _temporary: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for service in self.services:
            if not _NAME.match(service):
                raise ValueError(f"service {service!r}: a role name is [a-z][a-z0-9_]*")

    # --- who runs it, where ------------------------------------------------------------

    @property
    def _user(self) -> pwd.struct_passwd | None:
        """The user the server runs as; None: this process's own (not root)."""
        return pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None

    @property
    def pgdata(self) -> Path:
        """Where the cluster's files are (``data_dir``, or the private directory used
        when the server's user cannot reach ``data_dir``)."""
        user = self._user
        if user is None or _reachable(self.data_dir.parent, user.pw_uid, user.pw_gid):
            return self.data_dir
        if self._temporary is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="meshkit-postgres-"))
            os.chown(self._temporary, user.pw_uid, user.pw_gid)
        return self._temporary / "data"

    def _popen_options(self) -> dict[str, Any]:
        options = super()._popen_options()
        if self._user is not None:
            options["env"] = {"PATH": os.environ.get("PATH", ""), "LANG": "C"}
        return options

    def _argv(self, cmd: list[str]) -> list[str]:
        """As ``nobody`` when run by root (setpriv changes user, then execs)."""
        user = self._user
        if user is None:
            return super()._argv(cmd)
        ids = ["--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--clear-groups"]
        return dying_with_parent(cmd, *ids)

    @property
    def superuser_password(self) -> str:
        path = self.auth_dir / f"{SUPERUSER}.password"
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def password(self, role: str) -> str:
        """``role``'s password (made on first use, kept in ``<auth>/<role>.password``)."""
        path = self.auth_dir / f"{role}.password"
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def passfile(self, service: str) -> Path:
        return self.auth_dir / f"{service}.pgpass"

    # --- what a service is given -------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def dsn(self, role: str, database: str | None = None) -> str:
        """Where ``role`` connects (no password: it is in its password file)."""
        return f"postgresql://{role}@{self.host}:{self.port}/{database or role}"

    @property
    def url(self) -> str:
        """The cluster, for a summary line (no role, no database)."""
        return f"postgresql://{self.host}:{self.port}"

    def env(self, service: str) -> dict[str, str]:
        """What an instance of ``service`` needs to use its database (nothing for a
        service without one)."""
        if service not in self.services:
            return {}
        return {
            "MESH_DATABASE": "postgres",
            "MESH_DATABASE_URL": self.dsn(service),
            "PGPASSFILE": str(self.passfile(service)),
        }

    async def connect_as_superuser(self, database: str = "postgres") -> asyncpg.Connection:
        """devstack's own connection (tests use it to look into a service's database)."""
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=self.superuser_password,
            database=database,
        )

    # --- the process -------------------------------------------------------------------

    def command(self) -> list[str]:
        self._init()
        if not self.port:
            self.port = DEFAULT_PORT if self.fixed_port and _free(DEFAULT_PORT) else free_port()
        settings = {**SETTINGS, "listen_addresses": self.host, "port": str(self.port)}
        return [
            pg_binary("postgres"),
            "-D",
            str(self.pgdata),
            *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")),
        ]

    def _init(self) -> None:
        """``initdb`` once (a data directory with PG_VERSION is a cluster already)."""
        pgdata = self.pgdata
        if (pgdata / "PG_VERSION").exists():
            return
        user = self._user
        pgdata.mkdir(parents=True, exist_ok=True)
        os.chmod(pgdata, 0o700)
        fd, pwfile = tempfile.mkstemp(prefix="meshkit-pg-pw-")
        try:
            os.write(fd, self.superuser_password.encode() + b"\n")
            os.close(fd)
            if user is not None:
                os.chown(pgdata, user.pw_uid, user.pw_gid)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            options = self._popen_options()
            initdb = [
                pg_binary("initdb"),
                "-D", str(pgdata),
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ]  # fmt: skip
            out = subprocess.run(
                self._argv(initdb), capture_output=True, text=True, env=options["env"], check=False
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pwfile)
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed ({out.returncode}):\n{out.stdout}{out.stderr}")
        hba = pgdata / "pg_hba.conf"
        hba.write_text(HBA)
        if user is not None:
            os.chown(hba, user.pw_uid, user.pw_gid)

    def is_ready(self) -> bool:
        done = subprocess.run(
            [pg_binary("pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return done.returncode == 0

    def start(self, timeout: float | None = None) -> PostgresCluster:
        super().start(timeout)
        try:
            _run_async(self._provision)
        except BaseException:
            self.stop()
            raise
        return self

    async def _provision(self) -> None:
        """A role, a database and a password file per service (idempotent)."""
        conn = await self.connect_as_superuser()
        try:
            for service in self.services:
                password = self.password(service)
                name = f'"{service}"'  # quoted: "order" is a keyword
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", service)
                verb = "ALTER" if exists else "CREATE"
                # DDL takes no parameters; the name is checked ([a-z0-9_]), the password
                # is url-safe base64 (no quote can be in it).
                await conn.execute(
                    f"{verb} ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                    f" PASSWORD '{password}'"
                )
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", service):
                    await conn.execute(f"CREATE DATABASE {name} OWNER {name}")
                await conn.execute(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
                await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {name}")
                # Any database: which one it may use is the server's to say (CONNECT).
                write_secret(
                    self.passfile(service), f"{self.host}:{self.port}:*:{service}:{password}\n"
                )
        finally:
            await conn.close()

    def discard(self) -> None:
        """Stops the cluster and removes its private directory, if it had to use one
        (``data_dir`` is kept)."""
        self.stop()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
