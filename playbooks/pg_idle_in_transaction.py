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

Step 3 (`restart_deployment`): if the pool is still exhausted `follow_up_seconds` after the
termination (the alert still fires and no verification proved the fix; a durable timer, so a
restart of the daemon does not lose it), or at once if nothing was eligible to terminate, the
playbook does a rollout restart of the application's Deployment, named by the alert's
`namespace` and `deployment` labels (refused like any Kubernetes action: a missing or invalid
label, a Deployment that does not exist or is paused, a denied namespace), and watches it roll
out for `restart_deadline_seconds`. Step 4: if the pool is still exhausted
`follow_up_seconds` after the restart, humans (raising the pool size is their decision).
When PostgreSQL refuses the daemon's own connection because every slot is taken ("too many
clients", "remaining connection slots are reserved"), the usual state of an exhausted pool,
step 2 cannot look at any session, and the playbook goes straight to step 3 (the reason is in
the record and the report); with `restart_deployment: false` the run fails and escalates.
Keep a slot for the daemon's role so that step 2 can run at all (README, "PostgreSQL").
Without a Kubernetes client (`kubernetes.mode: none`) step 3 escalates the exact
`kubectl rollout restart` command instead. Shadow mode records the next step and escalates
nothing.

Parameters (`playbooks.pg-idle-in-transaction.params`):

  idle_threshold_seconds  How long a session must have been idle in transaction (since its
                          last state change). Default 300, the runbook's 5 minutes.
  max_sessions            At most this many sessions per run, the oldest first. Default 10.
                          `guards.blast_radius.max_sessions_per_run` is the ceiling (`check`
                          warns when this is above it): a run with more eligible sessions
                          terminates the oldest it may, says how many it left, and goes on to
                          step 3 as usual.
  application_name        Only sessions with exactly this application_name (default: any).
  user                    Only sessions of this database role (default: any).
  allow_superuser         Also terminate superusers' sessions. Default false; the daemon's
                          role must then be a superuser itself.
  restart_deployment      Take step 3 when step 2 did not help. Default true.
  follow_up_seconds       How long step 2 (and step 3) gets to work before the next step.
                          Default 300: longer than the verification's bake (2 minutes, or
                          `playbooks.pg-idle-in-transaction.verify.bake_seconds`), so its
                          verdict counts.
  restart_deadline_seconds  How long the restart gets to roll out. Default 120.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import (
    Alert,
    Ceiling,
    ResolveScope,
    Run,
    Target,
    TargetError,
    Verify,
    playbook,
    targets,
)
from remediator.playbook.access import uses
from remediator.playbook.kube import Kube
from remediator.playbook.postgres import PoolExhausted, Postgres


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_threshold_seconds: float = Field(300.0, gt=0)
    # The guard is the ceiling: above it, the oldest `max_sessions_per_run` are terminated.
    max_sessions: Annotated[
        int, Field(ge=1, le=100), Ceiling("guards.blast_radius.max_sessions_per_run")
    ] = 10
    application_name: str | None = Field(None, min_length=1)
    user: str | None = Field(None, min_length=1)
    allow_superuser: bool = False
    restart_deployment: bool = True
    follow_up_seconds: float = Field(300.0, gt=0)
    restart_deadline_seconds: float = Field(120.0, gt=0)


def application(alert: Alert) -> Target:
    """The application's Deployment, as the alert's labels validly name it (or TargetError)."""
    return targets.deployment()(alert.labels, ResolveScope())


def restart_step(alert: Alert, why: str) -> str:
    """The runbook's next step for humans, naming only a Deployment the labels validly name."""
    try:
        app = application(alert)
    except TargetError as exc:
        return f"{why}; the runbook's next step is to restart the application, but {exc}"
    return (
        f"{why}; the runbook's next step: kubectl rollout restart deployment/{app.name} "
        f"-n {app.namespace} (remediator has no Kubernetes client to do it)"
    )


async def restart(alert: Alert, params: Params, kube: Kube | None, run: Run, why: str) -> None:
    """Step 3: restart the application's Deployment, then give it `follow_up_seconds`."""
    if kube is None:
        run.escalate(restart_step(alert, why))
        return
    try:
        app = application(alert)
    except TargetError as exc:
        run.escalate(f"{why}; the runbook's next step is to restart the application, but {exc}")
        return
    run.evidence("restart_because", why)
    await kube.rollout_restart(app)
    rollout = await kube.wait_rollout(app, params.restart_deadline_seconds)
    run.evidence("restart", rollout.describe())
    if not rollout.done:
        run.escalate(f"{why}; the rollout restart of {app.key} did not roll out: {rollout.reason}")
        return
    await run.follow_up(params.follow_up_seconds, AfterStep(restarted=app.key))


class AfterStep(BaseModel):
    """The step the follow-up comes after: sessions terminated (2) or the application
    restarted (3)."""

    terminated: int | None = None
    restarted: str | None = None


async def still_exhausted(
    *,
    alert: Alert,
    params: Params,
    run: Run,
    data: AfterStep,
    kube: Kube | None = None,
    **_: Any,
) -> None:
    """The pool is still exhausted after step 2 (restart: step 3) or after step 3 (humans)."""
    if data.restarted is not None:
        run.escalate(
            f"the pool is still exhausted {params.follow_up_seconds:g} s after the rollout "
            f"restart of {data.restarted}; raising the pool size is for humans"
        )
        return
    why = (
        f"the pool is still exhausted {params.follow_up_seconds:g} s after terminating "
        f"{data.terminated} session(s) idle in transaction"
    )
    await restart(alert, params, kube, run, why)


@playbook(
    match='alertname="DatabaseConnectionPoolExhausted"',
    target=targets.database(label="datname"),
    params=Params,
    verify=Verify(bake=timedelta(minutes=2)),
    follow_up=still_exhausted,
    access=uses(Kube.rollout_restart, Kube.wait_rollout),  # step 3
)
async def pg_idle_in_transaction(
    *,
    alert: Alert,
    target: Any,
    params: Params,
    postgres: Postgres,
    run: Run,
    log: Any,
    kube: Kube | None = None,
    **_: Any,
) -> None:
    """Terminate the sessions idle in transaction that exhaust the application's pool."""
    try:
        sessions = await postgres.terminate_idle_in_transaction(
            target,
            idle_threshold_seconds=params.idle_threshold_seconds,
            max_sessions=params.max_sessions,
            application_name=params.application_name,
            user=params.user,
            allow_superuser=params.allow_superuser,
        )
    except PoolExhausted as exc:
        if not params.restart_deployment:
            raise
        await refused_connection(alert, params, kube, run, exc)
        return
    log.info("idle in transaction", sessions=[s.pid for s in sessions])
    if not params.restart_deployment:
        return
    if run.dry_run:
        run.evidence("next_step", restart_step(alert, "if the pool stays exhausted"))
    elif sessions:
        await run.follow_up(params.follow_up_seconds, AfterStep(terminated=len(sessions)))
    else:
        why = (
            f"no session was idle in transaction for more than {params.idle_threshold_seconds:g} s"
        )
        await restart(alert, params, kube, run, why)


async def refused_connection(
    alert: Alert, params: Params, kube: Kube | None, run: Run, exc: PoolExhausted
) -> None:
    """Every slot is taken, ours too: no session can be looked at, so step 3 at once."""
    run.evidence("database_refused", str(exc))
    why = (
        "the database refused remediator's own connection because every connection slot is "
        "taken, so no session could be looked at (keep a slot for remediator's role: README, "
        "PostgreSQL)"
    )
    if run.dry_run:
        run.evidence("next_step", restart_step(alert, why))
        return
    await restart(alert, params, kube, run, why)
