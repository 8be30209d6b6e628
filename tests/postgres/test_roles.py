"""Each service's role may use its own database only: another service's refuses it (the
server's own refusal), and a service is given no password but a file of its own."""

from __future__ import annotations

import stat

import asyncpg
import pytest

from devstack.postgres import PostgresCluster

pytestmark = pytest.mark.integration


async def test_a_role_cannot_connect_to_another_services_database(
    cluster: PostgresCluster,
) -> None:
    password = cluster.password("alpha")
    own = await asyncpg.connect(
        host=cluster.host, port=cluster.port, user="alpha", password=password, database="alpha"
    )
    assert await own.fetchval("SELECT current_user") == "alpha"
    await own.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
        await asyncpg.connect(
            host=cluster.host, port=cluster.port, user="alpha", password=password, database="beta"
        )
    assert refused.value.args[0] == 'permission denied for database "beta"'
    assert refused.value.detail == "User does not have CONNECT privilege."
    assert refused.value.sqlstate == "42501"  # insufficient_privilege


async def test_a_role_is_no_superuser_and_cannot_make_databases_or_roles(
    cluster: PostgresCluster,
) -> None:
    conn = await asyncpg.connect(
        host=cluster.host,
        port=cluster.port,
        user="alpha",
        password=cluster.password("alpha"),
        database="alpha",
    )
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute("CREATE DATABASE gamma")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute("CREATE ROLE gamma")
    finally:
        await conn.close()


def test_a_service_gets_a_dsn_and_a_password_file_of_its_own(cluster: PostgresCluster) -> None:
    env = cluster.env("alpha")
    assert env["MESH_DATABASE"] == "postgres"
    assert env["MESH_DATABASE_URL"] == f"postgresql://alpha@127.0.0.1:{cluster.port}/alpha"
    passfile = cluster.passfile("alpha")
    assert env["PGPASSFILE"] == str(passfile)
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    password = cluster.password("alpha")
    assert passfile.read_text() == f"127.0.0.1:{cluster.port}:*:alpha:{password}\n"
    assert not any(password in value for value in env.values())
    assert cluster.env("gateway") == {}  # a service without a database gets nothing
