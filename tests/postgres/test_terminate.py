"""The alert arrives through the webhook; the server's own pg_stat_activity says who is gone."""

from __future__ import annotations

import asyncio

import pytest

from remediator.clients.postgres import TERMINATE_SQL
from remediator.playbook import Registry
from remediator_testing.servers import PostgresServer
from tests.conftest import MakeDaemon
from tests.postgres.conftest import Databases, Roles, Sessions
from tests.postgres.helpers import THRESHOLD, database, fire, past_threshold, pids, start

pytestmark = pytest.mark.servers


async def test_terminates_exactly_the_old_idle_transactions_of_the_database(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    doomed = {await sessions.idle_in_transaction(roles.app, db) for _ in range(3)}
    doomed.add(await sessions.aborted(roles.app, db))
    survivors = {
        await sessions.active(roles.app, db),
        await sessions.idle(roles.app, db),
        await sessions.idle_in_transaction(roles.superuser, db, "psql"),
        await sessions.idle_in_transaction(roles.app, databases.other),
        await sessions.idle_in_transaction(roles.app, db, "pg_dump"),  # protected by default
    }
    await past_threshold()
    survivors.add(await sessions.idle_in_transaction(roles.app, db))  # below the threshold
    daemon = await start(
        make_daemon, registry, {db: database(postgres_server, roles.remediator, db)}
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "acted", outcome.run.error
    assert await sessions.alive(doomed | survivors) == survivors
    evidence = outcome.run.evidence
    terminated = evidence["terminated"]
    assert pids(terminated) == doomed
    assert all(s["terminated"] is True for s in terminated)
    aborted = [s for s in terminated if s["state"] == "idle in transaction (aborted)"]
    assert len(aborted) == 1 and aborted[0]["query"] == "SELECT 1/0"
    for session in terminated:
        assert session["user"] == roles.app.name and session["application"] == "shop"
        assert session["idle_seconds"] >= THRESHOLD and session["client_addr"] == "127.0.0.1"
    assert evidence["eligible_sessions"] == 4 and evidence["datname"] == db
    assert evidence["sessions_by_state_before"]["idle in transaction"] == 6
    assert evidence["sessions_by_state_after"]["idle in transaction"] == 3
    [action] = outcome.actions
    assert (action.verb, action.resource, action.object) == (
        "terminate",
        "pg_stat_activity",
        f"Database/{db}",
    )
    assert action.state == "succeeded" and action.change == {"sessions": 4}
    assert action.body["sql"] == TERMINATE_SQL
    assert action.body["params"]["datname"] == db and action.body["params"]["limit"] == 4
    assert not outcome.escalations
    # Step 3 waits: a durable timer, in case the pool stays exhausted.
    timers = await daemon.engine.store.timers_for(outcome.episode.id)
    [timer] = [t for t in timers if t.kind == "follow_up"]
    assert (timer.state, timer.payload["data"]) == ("waiting", {"terminated": 4})


async def test_the_cap_terminates_only_the_oldest(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    opened = []
    for _ in range(5):
        opened.append(await sessions.idle_in_transaction(roles.app, db))
        await asyncio.sleep(0.05)  # distinct state_change times: "oldest" is well defined
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        params={"max_sessions": 3},
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "acted", outcome.run.error
    assert await sessions.alive(set(opened)) == set(opened[3:])
    assert [s["pid"] for s in outcome.run.evidence["terminated"]] == opened[:3]
    assert outcome.run.evidence["eligible_sessions"] == 5
    assert outcome.actions[0].change == {"sessions": 3}


async def test_shadow_mode_terminates_nothing_and_records_exactly_the_would_be_sessions(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    candidates = [await sessions.idle_in_transaction(roles.app, db) for _ in range(4)]
    others = {
        await sessions.idle(roles.app, db),
        await sessions.idle_in_transaction(roles.superuser, db),
        await sessions.idle_in_transaction(roles.app, databases.other),
    }
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        mode="shadow",
        params={"max_sessions": 3},
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "shadow", outcome.run.error
    everyone = set(candidates) | others
    assert await sessions.alive(everyone) == everyone
    would = outcome.run.evidence["would_terminate"]
    assert [s["pid"] for s in would] == candidates[:3]
    assert all("terminated" not in s for s in would)
    [action] = outcome.actions
    assert action.state == "would" and action.change == {"sessions": 3}
    assert action.body["sql"] == TERMINATE_SQL
    # The read that chose them is recorded too, with the same parameters.
    [select] = [c for c in outcome.calls if c["verb"] == "select"]
    chosen_with = {k: v for k, v in action.body["params"].items() if k != "terminate_wait_ms"}
    assert select["body"]["params"] == chosen_with
    # Step 3 is only described: no timer, nobody paged.
    next_step = outcome.run.evidence["next_step"]
    assert "kubectl rollout restart deployment/orders -n shop" in next_step
    assert await daemon.engine.store.timers_for(outcome.episode.id) == []
    assert outcome.escalations == []


@pytest.mark.parametrize("which", ["application_name", "user"])
async def test_application_and_user_filters(
    which: str,
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    worker = await sessions.idle_in_transaction(roles.app, db, "worker")
    web = await sessions.idle_in_transaction(roles.app, db, "web")
    other_user = await sessions.idle_in_transaction(roles.app2, db, "worker")
    await past_threshold()
    params, doomed = (
        ({"application_name": "worker"}, {worker, other_user})
        if which == "application_name"
        else ({"user": roles.app2.name}, {other_user})
    )
    daemon = await start(
        make_daemon, registry, {db: database(postgres_server, roles.remediator, db)}, params=params
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "acted", outcome.run.error
    everyone = {worker, web, other_user}
    assert await sessions.alive(everyone) == everyone - doomed
    assert pids(outcome.run.evidence["terminated"]) == doomed


async def test_superusers_only_when_allowed_and_only_by_a_superuser(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    admin = await sessions.idle_in_transaction(roles.superuser, db, "psql")
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {
            db: database(postgres_server, roles.remediator, db),
            "as-superuser": database(postgres_server, roles.superuser, db),
        },
        params={"allow_superuser": True},
    )

    refused = await fire(daemon, db)

    assert refused.run.state == "failed"
    assert "allow_superuser" in (refused.run.error or "")
    assert await sessions.alive({admin}) == {admin}

    allowed = await fire(daemon, "as-superuser")

    assert allowed.run.state == "acted", allowed.run.error
    assert pids(allowed.run.evidence["terminated"]) == {admin}
    assert await sessions.alive({admin}) == set()


async def test_an_alias_names_the_same_database_and_target(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    stuck = await sessions.idle_in_transaction(roles.app, db)
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {"orders": database(postgres_server, roles.remediator, db, aliases=[f"{db}_replica"])},
    )

    outcome = await fire(daemon, f"{db}_replica")

    assert outcome.run.state == "acted", outcome.run.error
    assert outcome.run.target_key == "Database/orders"
    assert outcome.run.evidence["datname"] == db  # from the DSN: the database it connects to
    assert await sessions.alive({stuck}) == set()


async def test_the_blast_radius_guard_sees_the_exact_count_and_can_refuse(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    stuck = {await sessions.idle_in_transaction(roles.app, db) for _ in range(3)}
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        config={"guards": {"blast_radius": {"max_sessions_per_run": 2}}},
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "refused"
    assert "3 database sessions in one run exceeds 2" in (outcome.run.error or "")
    [action] = outcome.actions
    assert action.state == "refused" and action.change == {"sessions": 3}
    assert await sessions.alive(stuck) == stuck
    assert outcome.escalations
