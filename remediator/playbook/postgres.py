"""The `postgres=` keyword: the configured databases, bound to one run.

Playbooks name a database only through their target (which the configuration bounds), and
every termination goes through `run.act`, so guards, shadow mode and the record apply to it
like to any other change. In shadow mode the same selection runs without signalling anyone,
and exactly the sessions it would terminate are recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from remediator.clients.postgres import (
    SELECT_SQL,
    TERMINATE_SQL,
    PoolExhausted,
    PostgresClient,
    Session,
    SessionFilter,
)
from remediator.playbook.changes import SESSIONS
from remediator.playbook.context import Action, Run
from remediator.playbook.targets import Target, TargetError

__all__ = ["PoolExhausted", "Postgres"]


class Postgres:
    def __init__(self, run: Run, databases: Mapping[str, PostgresClient]) -> None:
        self._run = run
        self._databases = databases

    def _client(self, database: Target) -> PostgresClient:
        client = self._databases.get(database.name) if database.kind == "Database" else None
        if client is None:
            raise TargetError(f"{database.key} is not a database configured under `databases`")
        return client

    async def terminate_idle_in_transaction(
        self,
        database: Target,
        *,
        idle_threshold_seconds: float = 300.0,
        max_sessions: int = 10,
        application_name: str | None = None,
        user: str | None = None,
        allow_superuser: bool = False,
    ) -> list[Session]:
        """Terminate the oldest sessions idle in transaction for longer than the threshold.

        At most `max_sessions`, and never more than the guards allow this run
        (`guards.blast_radius.max_sessions_per_run` is the ceiling): a cap takes the oldest
        that many and says, in the run's notes and evidence, how many it left.

        Returns the sessions terminated (in shadow mode: those that would be). Evidence: the
        sessions, how many were eligible before the cap, and the sessions by state before and
        after. Raises a `DatabaseError` (unreachable, authentication, privilege, timeout) or
        `ActionRefused`.
        """
        client = self._client(database)
        run = self._run
        left = await run.allowance(SESSIONS)
        # Nothing left: ask for what the playbook wants, so the guard says why not.
        ceiling = left is not None and 0 < left < max_sessions
        limit = left if ceiling and left is not None else max_sessions
        async with client.connect() as conn:
            privileges = await conn.require_terminate_privileges(allow_superuser=allow_superuser)
            datname = client.datname or privileges.datname
            run.evidence("datname", datname)
            run.evidence("sessions_by_state_before", await conn.counts_by_state(datname))
            which = SessionFilter(
                datname=datname,
                idle_threshold_seconds=idle_threshold_seconds,
                limit=limit,
                application_name=application_name,
                user=user,
                allow_superuser=allow_superuser,
                protected_applications=client.protected_applications,
            )
            await run.record_call(
                "select",
                "pg_stat_activity",
                database.key,
                {"sql": SELECT_SQL, "params": which.params()},
            )
            found = await conn.select(which)
            run.evidence("eligible_sessions", found.eligible)
            if not found.sessions:
                return []
            count = len(found.sessions)
            capped = found.eligible > count
            oldest = f" (the oldest {count} of {found.eligible})" if capped else ""
            # The statement may terminate no more sessions than the guards were shown.
            bounded = replace(which, limit=len(found.sessions))
            action = Action(
                verb="terminate",
                resource="pg_stat_activity",
                target=database,
                summary=(
                    f"terminate {count} session(s){oldest} idle in transaction for more "
                    f"than {idle_threshold_seconds:g} s in database {datname}"
                ),
                body={
                    "sql": TERMINATE_SQL,
                    "params": {**bounded.params(), "terminate_wait_ms": conn.terminate_wait_ms},
                },
                change={SESSIONS: count},
            )
            result = await run.act(action, lambda: conn.terminate(bounded))
            if capped:  # a cap limits the action; the run goes on and says what it left
                why = (
                    f"guards.blast_radius.max_sessions_per_run leaves {limit} for this run"
                    if ceiling
                    else f"the playbook's max_sessions is {limit}"
                )
                done = "would terminate" if result is None else "terminated"
                run.evidence("sessions_left", found.eligible - count)
                run.note(
                    f"{done} the oldest {count} of {found.eligible} sessions idle in "
                    f"transaction; {found.eligible - count} left ({why})"
                )
            if result is None:  # shadow mode: nothing was signalled
                run.evidence("would_terminate", [s.to_json() for s in found.sessions])
                return found.sessions
            run.evidence("terminated", [s.to_json() for s in result.sessions])
            run.evidence("sessions_by_state_after", await conn.counts_by_state(datname))
            return result.sessions
