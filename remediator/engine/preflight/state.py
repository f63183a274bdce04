"""The state store (backend postgres): can the daemon connect, is the schema one this release
can run on, and may its role create (or at least write) the tables it needs?"""

from __future__ import annotations

import asyncpg

from remediator.config import ConfigError, Settings
from remediator.engine.preflight.finding import Finding
from remediator.store.postgres.database import DRIVER_ERRORS
from remediator.store.postgres.migrate import applied_version, latest_version, tables, too_new

_SUBJECT = "state database"
# A malformed URL is a ValueError.
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, ValueError)


async def check_state(settings: Settings) -> list[Finding]:
    if settings.state.backend != "postgres":
        return []
    try:
        dsn = settings.state.dsn_value()
    except ConfigError as exc:
        return [Finding(_SUBJECT, False, "; ".join(exc.problems))]
    try:
        conn = await asyncpg.connect(dsn, timeout=5.0)
    except _CONNECT_ERRORS as exc:
        return [Finding(_SUBJECT, False, f"cannot connect: {type(exc).__name__}: {exc}")]
    try:
        return [await _check(conn)]
    except DRIVER_ERRORS as exc:
        return [Finding(_SUBJECT, False, f"{type(exc).__name__}: {exc}")]
    finally:
        await conn.close()


async def _check(conn: asyncpg.Connection) -> Finding:
    role, schema = await conn.fetchrow("SELECT current_user, current_schema()")
    if schema is None:
        return Finding(_SUBJECT, False, f"role {role!r} has no schema in its search_path")
    missing = []
    for table in tables():
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        if not exists:
            continue
        if not await conn.fetchval(
            "SELECT has_table_privilege($1, 'SELECT, INSERT, UPDATE, DELETE')", table
        ):
            missing.append(table)
    if missing:
        return Finding(
            _SUBJECT,
            False,
            f"role {role!r} cannot read and write {', '.join(missing)} in schema {schema!r}: "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role} "
            "(and USAGE ON ALL SEQUENCES), or make it the tables' owner",
        )
    version = await applied_version(conn) or 0
    latest = latest_version()
    if version > latest:
        return Finding(_SUBJECT, False, str(too_new(version)))
    if version < latest and not await conn.fetchval(
        "SELECT has_schema_privilege(current_schema(), 'CREATE')"
    ):
        return Finding(
            _SUBJECT,
            False,
            f"schema version {version} needs migrating to {latest} at start, and role "
            f"{role!r} cannot create tables in schema {schema!r}: GRANT CREATE ON SCHEMA "
            f"{schema} TO {role}, or make it the schema's owner",
        )
    if version < latest:
        return Finding(
            _SUBJECT,
            True,
            f"role {role!r} connects; schema {schema!r} will be migrated from version "
            f"{version} to {latest} at start",
        )
    return Finding(
        _SUBJECT, True, f"role {role!r} connects and writes schema {schema!r} (version {latest})"
    )
