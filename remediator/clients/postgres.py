"""PostgreSQL: find and terminate sessions stuck `idle in transaction`, with asyncpg.

One short-lived connection per playbook run: a pool would hold connections to a server whose
problem may be too many connections. Every failure becomes one typed `DatabaseError` with a
message an on-call human can act on. The DSN is never logged, recorded or put in a message:
errors raised here suppress asyncpg's own traceback (whose frames hold the DSN).

The selection and the termination share one SQL fragment (`CANDIDATES`), so what shadow mode
lists is exactly what auto mode would terminate. Termination is one statement, so a PID is
signalled only if it still matches every filter at that instant (PIDs are reused).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from remediator.config import ConfigError

APPLICATION_NAME = "remediator"
QUERY_CHARS = 200  # of each terminated session's last query, for the record and the report

# The sessions eligible for termination, oldest first, at most $7. Every value is a bind
# parameter: $1 datname, $2 idle threshold (seconds), $3 application_name or NULL, $4 user or
# NULL, $5 allow superusers, $6 protected application names, $7 limit, $8 query characters.
CANDIDATES = """\
SELECT a.pid, a.usename, a.application_name, host(a.client_addr) AS client_addr, a.state,
       round(extract(epoch FROM now() - a.state_change)::numeric, 1)::float8 AS idle_seconds,
       left(a.query, $8) AS query, a.state_change, count(*) OVER () AS eligible
FROM pg_stat_activity AS a
LEFT JOIN pg_roles AS r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend'
  AND a.datname = $1
  AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND a.state_change < now() - make_interval(secs => $2)
  AND a.pid <> pg_backend_pid()
  AND ($3::text IS NULL OR a.application_name = $3)
  AND ($4::text IS NULL OR a.usename = $4)
  AND ($5 OR NOT coalesce(r.rolsuper, true))
  AND NOT (a.application_name = ANY($6::text[]))
  AND NOT EXISTS (SELECT 1 FROM pg_stat_replication AS s WHERE s.pid = a.pid)
ORDER BY a.state_change, a.pid
LIMIT $7"""

# Shadow mode and the pre-check: the same rows, nothing signalled.
SELECT_SQL = CANDIDATES

# MATERIALIZED: the candidates are computed once, so pg_terminate_backend runs for exactly
# those rows. $9: milliseconds to wait for each backend to exit (PostgreSQL 14+).
TERMINATE_SQL = f"""\
WITH candidates AS MATERIALIZED (
{CANDIDATES}
)
SELECT c.*, pg_terminate_backend(c.pid, $9) AS terminated
FROM candidates AS c
ORDER BY c.state_change, c.pid"""

# pg_has_role(..., 'USAGE') is true for superusers and for members of pg_monitor, which
# includes pg_read_all_stats.
PRIVILEGES_SQL = """\
SELECT current_user AS role, current_database() AS datname, r.rolsuper AS superuser,
       pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS can_signal,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_stats
FROM pg_roles AS r WHERE r.rolname = current_user"""

COUNTS_SQL = """\
SELECT coalesce(state, 'not visible') AS state, count(*) AS sessions
FROM pg_stat_activity
WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1 ORDER BY 1"""


class DatabaseError(Exception):
    """A database step failed; the message says which database and what to fix."""


class DatabaseUnreachable(DatabaseError):
    """No connection: nothing listens, the server refuses clients, or the connection broke."""


class PoolExhausted(DatabaseUnreachable):
    """The server refuses the daemon's connection because every slot is taken (SQLSTATE 53300:
    "too many clients", "remaining connection slots are reserved", a role's connection limit):
    the very problem the daemon is there to fix, so not a reason to stop at once."""


class AuthenticationFailed(DatabaseError):
    """Wrong password, unknown role, or pg_hba.conf rejects the daemon."""


class PrivilegeMissing(DatabaseError):
    """The role lacks what the step needs; the message names the GRANT."""


class StatementTimeout(DatabaseError):
    """The server cancelled a statement after `statement_timeout_ms` (or stopped answering)."""


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions are eligible; every field ends up as a bind parameter."""

    datname: str
    idle_threshold_seconds: float
    limit: int
    application_name: str | None = None
    user: str | None = None
    allow_superuser: bool = False
    protected_applications: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        """The bind parameters by name, in $1..$8 order: what is recorded is what is bound."""
        return {
            "datname": self.datname,
            "idle_threshold_seconds": self.idle_threshold_seconds,
            "application_name": self.application_name,
            "user": self.user,
            "allow_superuser": self.allow_superuser,
            "protected_applications": list(self.protected_applications),
            "limit": self.limit,
            "query_chars": QUERY_CHARS,
        }


@dataclass(frozen=True)
class Session:
    """One backend as the record and the report show it."""

    pid: int
    user: str | None
    application: str
    client_addr: str | None
    state: str
    idle_seconds: float
    query: str
    # None: only listed (shadow mode). False: signalled, but still there after
    # terminate_wait_ms (it usually exits soon after), or it had already gone.
    terminated: bool | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "pid": self.pid,
            "user": self.user,
            "application": self.application,
            "client_addr": self.client_addr,
            "state": self.state,
            "idle_seconds": self.idle_seconds,
            "query": self.query,
        }
        if self.terminated is not None:
            data["terminated"] = self.terminated
        return data


@dataclass(frozen=True)
class Selection:
    sessions: list[Session]
    eligible: int  # before the limit: more than len(sessions) means the cap held some back


@dataclass(frozen=True)
class Privileges:
    role: str
    datname: str
    superuser: bool
    can_signal: bool
    can_read_stats: bool


def _identifier(name: str) -> str:
    """A role name as SQL would need it written: quoted unless it is a plain identifier."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def missing_grants(found: Privileges, *, allow_superuser: bool = False) -> list[str]:
    """What the role lacks to terminate sessions, every item at once, ending with the GRANT
    that fixes the grants (empty: nothing is missing)."""
    problems = []
    grants = []
    if allow_superuser and not found.superuser:
        problems.append(
            f"allow_superuser is set but role {found.role!r} is not a superuser, and only "
            "superusers may terminate superusers' sessions"
        )
    if not found.can_read_stats:
        grants.append("pg_read_all_stats")
        problems.append(
            f"role {found.role!r} lacks pg_read_all_stats (or pg_monitor), so it cannot see "
            "other roles' session state and no session would ever match"
        )
    if not found.can_signal:
        grants.append("pg_signal_backend")
        problems.append(
            f"role {found.role!r} lacks pg_signal_backend, so it cannot terminate other roles' "
            "sessions"
        )
    if grants:
        problems.append(f"GRANT {', '.join(grants)} TO {_identifier(found.role)}")
    return problems


def _selection(rows: Sequence[Mapping[str, Any]]) -> Selection:
    sessions = [
        Session(
            pid=row["pid"],
            user=row["usename"],
            application=row["application_name"],
            client_addr=row["client_addr"],
            state=row["state"],
            idle_seconds=row["idle_seconds"],
            query=row["query"] or "",
            terminated=row.get("terminated"),
        )
        for row in rows
    ]
    return Selection(sessions, int(rows[0]["eligible"]) if rows else 0)


class Connection:
    """One open connection to one configured database."""

    def __init__(self, database: str, conn: Any, terminate_wait_ms: int) -> None:
        self._database = database
        self._conn = conn
        self.terminate_wait_ms = terminate_wait_ms

    async def privileges(self) -> Privileges:
        async with _statement(self._database):
            row = await self._conn.fetchrow(PRIVILEGES_SQL)
        return Privileges(
            role=row["role"],
            datname=row["datname"],
            superuser=row["superuser"],
            can_signal=row["can_signal"],
            can_read_stats=row["can_read_stats"],
        )

    async def require_terminate_privileges(self, *, allow_superuser: bool) -> Privileges:
        """Fail loudly where PostgreSQL would fail silently or half-way.

        Without pg_read_all_stats, other roles' `state` reads as NULL, nothing ever matches and
        the run would look like a clean no-op. Without pg_signal_backend (or, for superusers'
        sessions, without being a superuser), the statement would terminate some sessions and
        then fail on the first one it may not signal. Every missing grant is named at once.
        """
        found = await self.privileges()
        problems = missing_grants(found, allow_superuser=allow_superuser)
        if problems:
            raise PrivilegeMissing(f"database {self._database}: " + "; ".join(problems))
        return found

    async def counts_by_state(self, datname: str) -> dict[str, int]:
        async with _statement(self._database):
            rows = await self._conn.fetch(COUNTS_SQL, datname)
        return {row["state"]: row["sessions"] for row in rows}

    async def select(self, which: SessionFilter) -> Selection:
        async with _statement(self._database):
            rows = await self._conn.fetch(SELECT_SQL, *which.params().values())
        return _selection([dict(row) for row in rows])

    async def terminate(self, which: SessionFilter) -> Selection:
        async with _statement(self._database):
            rows = await self._conn.fetch(
                TERMINATE_SQL, *which.params().values(), self.terminate_wait_ms
            )
        return _selection([dict(row) for row in rows])


@asynccontextmanager
async def _statement(database: str) -> AsyncIterator[None]:
    """Turn what asyncpg raises during a statement into a DatabaseError."""
    try:
        yield
    except asyncpg.QueryCanceledError as exc:
        raise StatementTimeout(f"database {database}: statement cancelled: {exc}") from None
    except TimeoutError:
        raise StatementTimeout(f"database {database}: no answer within the timeout") from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise PrivilegeMissing(f"database {database}: {exc}") from None
    except (asyncpg.PostgresConnectionError, OSError) as exc:
        raise DatabaseUnreachable(f"database {database}: connection lost: {exc}") from None
    except asyncpg.PostgresError as exc:
        raise DatabaseError(
            f"database {database}: {type(exc).__name__}: {exc} (SQLSTATE {exc.sqlstate})"
        ) from None


def _redact(message: str, dsn: str) -> str:
    """Remove the DSN and its password from a message, should a library ever include them."""
    secrets = [dsn]
    password = urlsplit(dsn).password if "://" in dsn else None
    if password:
        secrets += [password, unquote(password)]
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def _connect_error(
    database: str, exc: BaseException, dsn_source: Callable[[], str]
) -> DatabaseError:
    # InvalidPasswordError is a subclass: wrong password, unknown role, pg_hba rejection.
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return AuthenticationFailed(f"database {database}: authentication failed: {exc}")
    if isinstance(exc, TimeoutError):
        return DatabaseUnreachable(f"database {database}: no connection within the timeout")
    if isinstance(exc, ConfigError):  # about the dsn_file, never its content
        return DatabaseError(f"database {database}: {exc}")
    try:
        detail = _redact(str(exc), dsn_source())
    except Exception:  # the DSN itself is unreadable: say nothing more than the error type
        detail = "(details withheld)"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return PoolExhausted(f"database {database}: server refuses connections: {detail}")
    if isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return DatabaseUnreachable(f"database {database}: cannot connect: {detail}")
    return DatabaseError(f"database {database}: cannot connect: {type(exc).__name__}: {detail}")


class PostgresClient:
    """How to reach one configured database; opens a connection per use."""

    def __init__(
        self,
        name: str,
        dsn_source: Callable[[], str],
        *,
        datname: str | None = None,
        protected_applications: Sequence[str] = (),
        connect_timeout_seconds: float = 5.0,
        statement_timeout_ms: int = 10_000,
        terminate_wait_ms: int = 500,
    ) -> None:
        self.name = name
        self.datname = datname
        self.protected_applications = tuple(protected_applications)
        # A callable, not the string: the secret never sits in an attribute or a repr.
        self._dsn_source = dsn_source
        self._connect_timeout = connect_timeout_seconds
        self._statement_timeout_ms = statement_timeout_ms
        self._terminate_wait_ms = terminate_wait_ms

    def __repr__(self) -> str:
        return f"PostgresClient({self.name!r})"

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        conn = await self._open()
        try:
            yield Connection(self.name, conn, self._terminate_wait_ms)
        finally:
            try:
                await asyncio.wait_for(conn.close(), self._connect_timeout)
            except asyncio.CancelledError:
                conn.terminate()  # never leave a session behind, even when cancelled
                raise
            except Exception:  # a broken connection cannot close politely; drop it
                conn.terminate()

    async def _open(self) -> Any:
        try:
            return await asyncpg.connect(
                self._dsn_source(),
                timeout=self._connect_timeout,
                # The server cancels a slow statement itself; the client-side timeout is only
                # the backstop for a server that stopped answering.
                command_timeout=self._statement_timeout_ms / 1000 + self._connect_timeout,
                server_settings={
                    "application_name": APPLICATION_NAME,
                    "statement_timeout": str(self._statement_timeout_ms),
                    # Catalog names in our SQL resolve to pg_catalog whatever the role's setting.
                    "search_path": "pg_catalog",
                },
            )
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise _connect_error(self.name, exc, self._dsn_source) from None
