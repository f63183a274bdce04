import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from remediator_testing.pytest_fixtures import PostgresDatabase
from remediator_testing.servers import PostgresServer, ServerStartError
from tests.servers.helpers import assert_pid_gone, process_uid

pytestmark = pytest.mark.servers


async def test_lifecycle_password_login_over_tcp_and_stop_by_pid() -> None:
    server = PostgresServer().start()
    try:
        pid, base_dir = server.pid, server.base_dir
        assert server.log_path.is_file()
        assert (server.data_dir / "PG_VERSION").read_text().strip() == "15"
        if os.geteuid() == 0:
            # Python's setuid: the PID we hold is the postmaster itself, as postgres.
            assert process_uid(pid) != 0
        conn = await asyncpg.connect(server.superuser_dsn)
        try:
            assert await conn.fetchval("select 1") == 1
            assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("show fsync") == "off"
            assert await conn.fetchval("show max_connections") == "200"
            assert await conn.fetchval("select pg_backend_pid()") != pid
        finally:
            await conn.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(server.dsn("postgres", "wrong"))
    finally:
        server.stop()
    assert_pid_gone(pid)
    assert not base_dir.exists()


async def test_stop_does_not_wait_for_open_connections() -> None:
    # A forgotten connection must not turn teardown into a stop_timeout wait.
    with PostgresServer(stop_timeout=5) as server:
        conn = await asyncpg.connect(server.superuser_dsn)
        pid = server.pid
    assert_pid_gone(pid)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await conn.fetchval("select 1")
    conn.terminate()


def test_start_failure_reports_log_tail() -> None:
    server = PostgresServer(settings={"shared_buffers": "'not a size'"})
    with pytest.raises(ServerStartError, match="shared_buffers"):
        server.start()
    assert not server.running
    assert not server.base_dir.exists()


def test_roles_databases_and_psql(postgres_server: PostgresServer) -> None:
    postgres_server.create_role("reader's", "pa'ss", in_roles=["pg_monitor"])
    postgres_server.create_role("nologin_group", None, login=False)
    postgres_server.create_database("db with space", owner="reader's")
    rows = postgres_server.psql(
        "select rolcanlogin, rolsuper from pg_roles where rolname in ('reader''s', "
        "'nologin_group') order by rolname; select pg_has_role('reader''s', 'pg_monitor', "
        "'member')"
    )
    assert rows == [["f", "f"], ["t", "f"], ["t"]]
    owner = postgres_server.psql(
        "select pg_get_userbyid(datdba) from pg_database where datname = 'db with space'"
    )
    assert owner == [["reader's"]]
    multiline = postgres_server.psql("select E'a\\nb', NULL, 'x'")
    assert multiline == [["a\nb", "", "x"]]


def test_psql_error_raises_with_stderr(postgres_server: PostgresServer) -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        postgres_server.psql("select * from no_such_table")
    assert b"no_such_table" in info.value.stderr


async def test_postgres_database_fixture_gives_isolated_login(
    postgres_database: PostgresDatabase,
) -> None:
    conn = await asyncpg.connect(postgres_database.dsn)
    try:
        assert await conn.fetchval("select current_user") == postgres_database.user
        assert await conn.fetchval("select current_database()") == postgres_database.name
        await conn.execute("create table t (id int)")
    finally:
        await conn.close()


def test_missing_binary_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="'postgresql'"):
        PostgresServer(bin_dir=tmp_path / "nonexistent").start()


async def test_restart_keeps_the_data_and_the_port_with_a_new_pid() -> None:
    # An outage in the middle of a test (tests/ha): the same server goes away and comes back.
    with PostgresServer() as server:
        server.psql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        port, first = server.port, server.pid
        conn = await asyncpg.connect(server.superuser_dsn)
        server.stop_process()
        assert_pid_gone(first)
        assert not server.running
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("select 1")
        conn.terminate()
        with pytest.raises(OSError):
            await asyncpg.connect(server.superuser_dsn, timeout=2)
        server.start_process()
        assert server.port == port and server.pid != first
        assert server.psql("SELECT n FROM kept") == [["7"]]
        server.restart()
        assert server.psql("SELECT n FROM kept") == [["7"]]
