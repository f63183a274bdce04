"""Step 3 of the runbook: when terminating did not help (or found nothing), restart the app.

It happens only if the alert still fires when the durable follow-up timer comes due. With a
Kubernetes client (the emulator here) the playbook does the rollout restart, and escalates if
the pool is still exhausted after it; without one it escalates with the exact command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remediator.playbook import Registry
from remediator.store.records import DecisionRecord
from remediator_testing.alerts import alert, notification
from remediator_testing.clock import ManualClock
from remediator_testing.kube import KubeEmulator
from remediator_testing.servers import PostgresServer
from tests.conftest import Daemon, MakeDaemon
from tests.kubernetes.helpers import grant
from tests.postgres.conftest import Databases, Roles, Sessions
from tests.postgres.helpers import database, fire, past_threshold, pool_exhausted, start

pytestmark = pytest.mark.servers

RESTART = "kubectl rollout restart deployment/orders -n shop"


# The follow-up's delay on the daemon's manual clock: shorter than the verification's bake
# (2 minutes), so only the follow-up comes due.
FOLLOW_UP = 60


async def decision(
    daemon: Daemon, episode_id: str, wanted: Callable[[DecisionRecord], bool]
) -> DecisionRecord:
    """Let the follow-up's delay pass: `advance` returns once the timer loop ran it to its end
    (decision, escalation, the timer's own state); the decision it recorded."""
    await daemon.advance(FOLLOW_UP)
    found = [d for d in await daemon.engine.store.decisions_for(episode_id) if wanted(d)]
    assert found, "the follow-up did not decide"
    return found[-1]


def follow_up(d: DecisionRecord) -> bool:
    return d.reason.startswith("no follow-up") or "still exhausted" in d.reason


async def start_acting(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> Daemon:
    db = databases.target
    await sessions.idle_in_transaction(roles.app, db)
    await past_threshold()
    return await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        params={"follow_up_seconds": FOLLOW_UP},
        clock=ManualClock(),
    )


async def test_still_firing_after_the_follow_up_delay_escalates_the_restart(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    daemon = await start_acting(make_daemon, registry, postgres_server, roles, databases, sessions)

    outcome = await fire(daemon, databases.target)
    assert outcome.run.state == "acted" and outcome.escalations == []

    decided = await decision(daemon, outcome.episode.id, follow_up)
    assert decided.kind == "noop" and decided.run_id == outcome.run.id
    assert "still exhausted 60 s after terminating 1 session(s)" in decided.reason
    assert RESTART in decided.reason
    [escalation] = await daemon.engine.store.escalations_for(outcome.episode.id)
    assert escalation.reason == decided.reason and escalation.run_id == outcome.run.id
    timers = await daemon.engine.store.timers_for(outcome.episode.id)
    assert [t.state for t in timers if t.kind == "follow_up"] == ["done"]


async def test_resolved_before_the_follow_up_needs_nothing_more(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    daemon = await start_acting(make_daemon, registry, postgres_server, roles, databases, sessions)
    outcome = await fire(daemon, databases.target)
    assert outcome.run.state == "acted"

    labels = pool_exhausted(databases.target)["alerts"][0]["labels"]
    status, _ = await daemon.post(notification([alert(labels, status="resolved")]))
    assert status == 200
    await daemon.settle()

    decided = await decision(daemon, outcome.episode.id, follow_up)
    assert (decided.kind, decided.reason) == ("skipped", "no follow-up: the alert resolved")
    assert await daemon.engine.store.escalations_for(outcome.episode.id) == []


async def test_a_verified_fix_needs_nothing_more_even_while_still_firing(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    daemon = await start_acting(make_daemon, registry, postgres_server, roles, databases, sessions)
    outcome = await fire(daemon, databases.target)
    # Prometheus saw the pool recover before Alertmanager sent the resolved notification.
    await daemon.engine.store.record_verification(
        episode_id=outcome.episode.id,
        run_id=outcome.run.id,
        playbook=outcome.run.playbook,
        target_key=outcome.run.target_key,
        query="hikaricp_connections_active >= hikaricp_connections_max",
        result="verified",
        detail="0 series returned",
    )

    decided = await decision(daemon, outcome.episode.id, follow_up)
    assert decided.reason == "no follow-up: the verification proved the fix"
    assert await daemon.engine.store.escalations_for(outcome.episode.id) == []


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, RESTART),
        ({"deployment": "orders; rm -rf /"}, "label 'deployment' is not a valid Kubernetes name"),
    ],
)
async def test_nothing_to_terminate_goes_straight_to_the_restart_step(
    labels: dict[str, str],
    expected: str,
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    young = await sessions.idle_in_transaction(roles.app, db)
    daemon = await start(
        make_daemon, registry, {db: database(postgres_server, roles.remediator, db)}
    )

    outcome = await fire(daemon, db, **labels)

    assert outcome.run.state == "noop", outcome.run.error
    assert outcome.actions == [] and outcome.run.evidence["eligible_sessions"] == 0
    assert await sessions.alive({young}) == {young}
    [escalation] = outcome.escalations
    assert escalation.reason.startswith("no session was idle in transaction for more than 2 s")
    assert expected in escalation.reason
    # A crafted label is quoted as bad input, never built into a command to copy and paste.
    assert escalation.reason.count("kubectl") == (1 if expected == RESTART else 0)


# With a Kubernetes client, step 3 is done, not escalated.

KUBE_FAST = {"poll_seconds": 0.02, "retry": {"attempts": 2, "initial_backoff_seconds": 0.01}}


def through_emulator(emu: KubeEmulator, tmp: Path) -> dict[str, Any]:
    """The daemon's config for a Kubernetes client that talks to the emulator, quickly, as
    the daemon's service account holding exactly the shipped RBAC."""
    token = grant(emu, tmp)
    return {"kubernetes": {"mode": "url", "url": emu.url, "token_file": str(token), **KUBE_FAST}}


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def restarted(emu: KubeEmulator) -> bool:
    template = emu.get("apps/v1", "deployments", "shop", "orders")["spec"]["template"]
    return RESTARTED_AT in (template["metadata"].get("annotations") or {})


async def test_with_kubernetes_a_still_exhausted_pool_restarts_the_deployment(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
    emu: KubeEmulator,
    tmp_path: Path,
) -> None:
    emu.add_deployment("shop", "orders", replicas=2)
    db = databases.target
    await sessions.idle_in_transaction(roles.app, db)
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        params={"follow_up_seconds": FOLLOW_UP},
        config=through_emulator(emu, tmp_path),
        clock=ManualClock(),
    )

    outcome = await fire(daemon, db)
    assert outcome.run.state == "acted" and not restarted(emu)

    decided = await decision(daemon, outcome.episode.id, lambda d: d.reason == "follow-up: acted")
    assert decided.run_id == outcome.run.id
    assert restarted(emu)
    await emu.wait_rolled_out("shop", "orders")
    actions = await daemon.engine.store.actions_for(outcome.episode.id)
    restart = actions[-1]
    assert (restart.verb, restart.object, restart.state) == (
        "patch",
        "Deployment/shop/orders",
        "succeeded",
    )
    assert set(restart.body["spec"]["template"]["metadata"]["annotations"]) == {RESTARTED_AT}

    # Step 4: the restart did not help either (the alert still fires): humans.
    escalated = await decision(
        daemon, outcome.episode.id, lambda d: "after the rollout restart" in d.reason
    )
    assert escalated.reason == (
        "the pool is still exhausted 60 s after the rollout restart of Deployment/shop/orders; "
        "raising the pool size is for humans"
    )
    assert len(await daemon.engine.store.actions_for(outcome.episode.id)) == len(actions)


async def test_with_kubernetes_nothing_to_terminate_restarts_at_once(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    emu: KubeEmulator,
    tmp_path: Path,
) -> None:
    emu.add_deployment("shop", "orders", replicas=1)
    db = databases.target
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        config=through_emulator(emu, tmp_path),
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "acted", outcome.run.error
    assert restarted(emu) and outcome.escalations == []
    assert outcome.run.evidence["restart_because"].startswith(
        "no session was idle in transaction for more than 2 s"
    )
    assert outcome.run.evidence["restart"]["done"] is True


async def test_with_kubernetes_the_restart_obeys_the_namespace_guard(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    emu: KubeEmulator,
    tmp_path: Path,
) -> None:
    emu.add_deployment("kube-system", "orders", replicas=1)
    db = databases.target
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        config=through_emulator(emu, tmp_path),
    )

    outcome = await fire(daemon, db, namespace="kube-system")

    assert outcome.run.state == "refused"
    assert outcome.run.error == "blast_radius: namespace 'kube-system' is denied"
    assert not [r for r in emu.requests if r.method == "PATCH"]
