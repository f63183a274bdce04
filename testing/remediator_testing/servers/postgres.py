"""A throwaway PostgreSQL 15 cluster for tests, benchmarks and playbook authors.

Playbooks that touch PostgreSQL must be exercised against the real server
(locks, roles, pg_stat_activity), not a mock. Each instance gets its own
initdb'd cluster in a temp dir, listening on a free 127.0.0.1 port with
password (SCRAM) authentication over TCP, tuned for speed over durability.
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from remediator_testing.servers._common import LOOPBACK, ManagedServer, ServerStartError, log_tail

DEFAULT_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; this OS account is created by the Debian package.
OS_USER = "postgres"
# ASCII unit separator: cannot be confused with the NUL record separator and
# practically never appears in test data.
FIELD_SEP = "\x1f"


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (role, database) for safe interpolation."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal (standard_conforming_strings is on by default)."""
    return "'" + value.replace("'", "''") + "'"


class PostgresServer(ManagedServer):
    """A PostgreSQL cluster on 127.0.0.1 with a password-protected ``postgres`` superuser.

    ``start()`` returns once the server accepts connections; ``stop()`` does a
    fast shutdown of the postmaster by PID and deletes the cluster.
    """

    name = "postgres"
    package = "postgresql"
    # SIGTERM is "smart" shutdown, which waits forever for clients a test forgot
    # to close; SIGINT ("fast") disconnects them and still shuts down cleanly.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def __init__(
        self,
        *,
        bin_dir: str | Path = DEFAULT_BIN_DIR,
        password: str | None = None,
        settings: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """``settings`` adds or overrides postgresql.conf entries (values are raw conf syntax)."""
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.bin_dir = Path(bin_dir)
        self.password = password or secrets.token_urlsafe(16)
        self.extra_settings = dict(settings or {})
        self._os_user = OS_USER if os.geteuid() == 0 else None

    # -- connection details ----------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    def dsn(self, user: str, password: str, database: str = "postgres") -> str:
        """A libpq/asyncpg URL for ``user`` over TCP on 127.0.0.1."""
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{LOOPBACK}:{self.port}/{quote(database, safe='')}"
        )

    @property
    def superuser_dsn(self) -> str:
        return self.dsn(SUPERUSER, self.password)

    # -- SQL helpers ------------------------------------------------------------

    def psql(self, sql: str, *, database: str = "postgres") -> list[list[str]]:
        """Run ``sql`` as superuser via ``psql``; return the rows it produced.

        With several statements, psql 15 prints every result set, so their rows
        are concatenated in order.

        Synchronous and loop-free, so it works from sync fixtures and from
        inside a running event loop alike. Fields are text (NULL becomes "").
        Raises subprocess.CalledProcessError, with psql's stderr, on any error.
        """
        env = dict(os.environ)
        env.update(
            PGPASSWORD=self.password,
            PGCONNECT_TIMEOUT="10",
            PGAPPNAME="remediator-testing",
        )
        # Avoid a user's ~/.psqlrc or service file changing output or target.
        for var in ("PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PSQLRC"):
            env.pop(var, None)
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "--no-psqlrc",
                "--no-align",
                "--tuples-only",
                f"--field-separator={FIELD_SEP}",
                "--record-separator-zero",
                "--set=ON_ERROR_STOP=1",
                f"--host={LOOPBACK}",
                f"--port={self.port}",
                f"--username={SUPERUSER}",
                f"--dbname={database}",
                "--command",
                sql,
            ],
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        records = result.stdout.decode().split("\0")
        return [record.split(FIELD_SEP) for record in records if record]

    def create_role(
        self,
        name: str,
        password: str | None,
        *,
        login: bool = True,
        superuser: bool = False,
        in_roles: Sequence[str] = (),
    ) -> None:
        """CREATE ROLE ``name`` (``password`` None means no password)."""
        parts = [
            f"CREATE ROLE {quote_ident(name)}",
            "LOGIN" if login else "NOLOGIN",
            "SUPERUSER" if superuser else "NOSUPERUSER",
        ]
        if password is not None:
            parts.append(f"PASSWORD {quote_literal(password)}")
        if in_roles:
            parts.append("IN ROLE " + ", ".join(quote_ident(r) for r in in_roles))
        self.psql(" ".join(parts))

    def create_database(self, name: str, owner: str = SUPERUSER) -> None:
        self.psql(f"CREATE DATABASE {quote_ident(name)} OWNER {quote_ident(owner)}")

    # -- ManagedServer hooks ------------------------------------------------------

    def _binaries(self) -> Sequence[Path]:
        return [self.bin_dir / tool for tool in ("initdb", "postgres", "pg_isready", "psql")]

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._os_user is None:
            return {}
        # Python's own setuid in the child (no su/sudo wrapper), so the PID we
        # hold is the postmaster itself and signals reach it directly.
        return {"user": self._os_user, "group": self._os_user, "extra_groups": []}

    def _prepare(self) -> None:
        if self._os_user is not None:
            self._hand_over_to_os_user()
        pwfile = self.base_dir / "pwfile"
        with pwfile.open("w") as fh:
            fh.write(self.password + "\n")
        self._chown(pwfile)
        pwfile.chmod(0o600)
        try:
            self._run_initdb(pwfile)
        finally:
            pwfile.unlink()
        settings = {
            "listen_addresses": quote_literal(LOOPBACK),
            "unix_socket_directories": quote_literal(str(self.data_dir)),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "log_destination": quote_literal("stderr"),
            "logging_collector": "off",
            **self.extra_settings,
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# remediator_testing.servers\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _command(self) -> list[str]:
        # The port goes on the command line so a clash retry needs no conf edit.
        return [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]

    def _is_ready(self) -> bool:
        # Probe our own unix socket: it lives in our data dir, so a reply can
        # only come from our postmaster, which has then bound its TCP port too.
        result = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"),
                f"--host={self.socket_dir}",
                f"--port={self.port}",
                f"--username={SUPERUSER}",
                "--dbname=postgres",
                "--timeout=2",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    # -- internals -----------------------------------------------------------------

    def _hand_over_to_os_user(self) -> None:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root but OS user {OS_USER!r} does not exist: install the "
                f"Debian package '{self.package}' (scripts/install-system-deps does this)"
            ) from None
        # mkdtemp makes the base dir 0700 root; the postgres user must traverse it.
        self.base_dir.chmod(0o711)
        self._chown(self.data_dir)
        self.data_dir.chmod(0o700)

    def _chown(self, path: Path) -> None:
        if self._os_user is not None:
            account = pwd.getpwnam(self._os_user)
            os.chown(path, account.pw_uid, account.pw_gid)

    def _run_initdb(self, pwfile: Path) -> None:
        command = [
            str(self.bin_dir / "initdb"),
            f"--pgdata={self.data_dir}",
            f"--username={SUPERUSER}",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            # C locale: containers often lack generated locales, and tests must not
            # depend on the machine's collation.
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        proc = self._spawn(command)
        try:
            returncode = proc.wait(timeout=self.startup_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            returncode = None
        if returncode != 0:
            outcome = "timed out" if returncode is None else f"failed with code {returncode}"
            raise ServerStartError(f"initdb {outcome}; log tail:\n{log_tail(self.log_path)}")
