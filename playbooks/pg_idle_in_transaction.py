"""DatabaseConnectionPoolExhausted: terminate sessions stuck `idle in transaction`.

The runbook ("Emergency Procedures: Database Connection Pool Exhaustion"):

  1. look at the sessions of the database;
  2. terminate the sessions `idle in transaction` for more than 5 minutes: each holds a pooled
     connection (and its locks) while the application forgot to commit or roll back;
  3. if the pool is still exhausted, `kubectl rollout restart deployment/<app>`;
  4. if that does not help either, humans.

This playbook does step 2 with these safety rails, in one SQL statement that selects and
terminates (so a reused PID is never hit): only client backends of the alert's database;
never superusers (unless allowed), replication, the daemon's own session, or the database's
`protected_applications`; the oldest first and at most `max_sessions`. In shadow mode it lists
exactly the sessions it would terminate.

The alert chooses the database only among those configured under `databases:` (by its
`datname` label, or one of a database's `aliases`); a label can never carry SQL or a DSN.

The database role needs `pg_signal_backend` (to terminate other roles' sessions) and
`pg_read_all_stats` or `pg_monitor` (without it every other role's state reads as NULL and
nothing would ever match); a missing grant fails the run with the GRANT to run.

Parameters (`playbooks.pg-idle-in-transaction.params`):

  idle_threshold_seconds  How long a session must have been idle in transaction (since its
                          last state change). Default 300, the runbook's 5 minutes.
  max_sessions            At most this many sessions per run, the oldest first. Default 10.
  application_name        Only sessions with exactly this application_name (default: any).
  user                    Only sessions of this database role (default: any).
  allow_superuser         Also terminate superusers' sessions. Default false; the daemon's
                          role must then be a superuser itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import playbook, targets
from remediator.playbook.postgres import Postgres


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_threshold_seconds: float = Field(300.0, gt=0)
    max_sessions: int = Field(10, ge=1, le=100)
    application_name: str | None = Field(None, min_length=1)
    user: str | None = Field(None, min_length=1)
    allow_superuser: bool = False


@playbook(
    match='alertname="DatabaseConnectionPoolExhausted"',
    target=targets.database(label="datname"),
    params=Params,
)
async def pg_idle_in_transaction(
    *, target: Any, params: Params, postgres: Postgres, log: Any, **_: Any
) -> None:
    """Terminate the sessions idle in transaction that exhaust the application's pool."""
    sessions = await postgres.terminate_idle_in_transaction(
        target,
        idle_threshold_seconds=params.idle_threshold_seconds,
        max_sessions=params.max_sessions,
        application_name=params.application_name,
        user=params.user,
        allow_superuser=params.allow_superuser,
    )
    log.info("idle in transaction", sessions=[s.pid for s in sessions])
