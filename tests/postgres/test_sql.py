"""What shadow mode lists and what auto mode terminates can never diverge; secrets stay out."""

from __future__ import annotations

import re

from remediator.clients.postgres import (
    CANDIDATES,
    SELECT_SQL,
    TERMINATE_SQL,
    PostgresClient,
    SessionFilter,
    _redact,
)


def _where(sql: str) -> str:
    match = re.search(r"\bWHERE\b(.*?)\bORDER BY\b", sql, re.DOTALL)
    assert match is not None, sql
    return match.group(1)


def test_selection_and_termination_share_one_where_fragment() -> None:
    assert CANDIDATES in SELECT_SQL and CANDIDATES in TERMINATE_SQL
    # Exactly one filter in each statement, and it is the shared one.
    assert SELECT_SQL.count("WHERE a.") == TERMINATE_SQL.count("WHERE a.") == 1
    assert _where(SELECT_SQL) == _where(TERMINATE_SQL) == _where(CANDIDATES)
    assert "pg_terminate_backend" not in SELECT_SQL
    assert TERMINATE_SQL.count("pg_terminate_backend(c.pid, $9)") == 1


def test_every_filter_is_a_bind_parameter() -> None:
    where = _where(CANDIDATES)
    for rule in [
        "a.backend_type = 'client backend'",
        "a.datname = $1",
        "a.state IN ('idle in transaction', 'idle in transaction (aborted)')",
        "a.state_change < now() - make_interval(secs => $2)",
        "a.pid <> pg_backend_pid()",
        "($3::text IS NULL OR a.application_name = $3)",
        "($4::text IS NULL OR a.usename = $4)",
        "($5 OR NOT coalesce(r.rolsuper, true))",
        "NOT (a.application_name = ANY($6::text[]))",
        "pg_stat_replication",
    ]:
        assert rule in where, rule
    assert "LIMIT $7" in CANDIDATES and "ORDER BY a.state_change" in CANDIDATES
    params = SessionFilter("orders'; --", 300, 10).params()
    assert list(params) == [
        "datname",
        "idle_threshold_seconds",
        "application_name",
        "user",
        "allow_superuser",
        "protected_applications",
        "limit",
        "query_chars",
    ]
    assert "orders'" not in CANDIDATES  # values never enter the text


def test_the_dsn_is_never_in_a_message_or_a_repr() -> None:
    dsn = "postgresql://app:p%40ss@db:5432/orders"
    assert _redact(f"cannot use {dsn}", dsn) == "cannot use ***"
    assert _redact("password p%40ss or p@ss", dsn) == "password *** or ***"
    assert "p%40ss" not in repr(PostgresClient("orders", lambda: dsn))
