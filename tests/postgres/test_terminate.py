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
    assert (timer.state, timer.payload["data"]["terminated"]) == ("waiting", 4)


async def test_the_cap_terminates_only_the_oldest(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    opened = await oldest_first(sessions, roles, db, 5)
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


async def oldest_first(sessions: Sessions, roles: Roles, db: str, count: int) -> list[int]:
    """`count` sessions idle in transaction, in the order they went idle (oldest first)."""
    opened = []
    for _ in range(count):
        opened.append(await sessions.idle_in_transaction(roles.app, db))
        await asyncio.sleep(0.05)  # distinct state_change times: "oldest" is well defined
    return opened


async def test_the_guards_cap_terminates_the_oldest_and_goes_on(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    """Issue 14, item 9: with max_sessions_per_run 2 and 4 stuck sessions the run was refused
    and nothing was terminated. A count cap limits the action: the oldest 2 go, the rest are
    reported, and the runbook's next step is armed as after any termination."""
    db = databases.target
    opened = await oldest_first(sessions, roles, db, 4)
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        config={"guards": {"blast_radius": {"max_sessions_per_run": 2}}},
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "acted", outcome.run.error
    assert await sessions.alive(set(opened)) == set(opened[2:])
    evidence = outcome.run.evidence
    assert [s["pid"] for s in evidence["terminated"]] == opened[:2]
    assert evidence["eligible_sessions"] == 4 and evidence["sessions_left"] == 2
    said = (
        "terminated the oldest 2 of 4 sessions idle in transaction; 2 left "
        "(guards.blast_radius.max_sessions_per_run leaves 2 for this run)"
    )
    assert evidence["notes"] == [said]
    [decision] = [d for d in outcome.decisions if d.kind == "acted"]
    assert decision.reason == f"acted; {said}"
    [action] = outcome.actions
    assert action.state == "succeeded" and action.change == {"sessions": 2}
    assert action.summary.startswith("terminate 2 session(s) (the oldest 2 of 4) idle in")
    assert action.body["params"]["limit"] == 2
    assert outcome.escalations == []
    # The next step goes on as after any termination: a durable follow-up.
    timers = await daemon.engine.store.timers_for(outcome.episode.id)
    [timer] = [t for t in timers if t.kind == "follow_up"]
    assert (timer.state, timer.payload["data"]["terminated"]) == ("waiting", 2)


async def test_a_parameter_above_the_guard_is_capped_by_the_guard(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    """max_sessions: 20 against the default ceiling of 10, with 12 stuck sessions: the run
    used to be refused outright; the guard is the ceiling, so the oldest 10 go."""
    db = databases.target
    opened = await oldest_first(sessions, roles, db, 12)
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        params={"max_sessions": 20},
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "acted", outcome.run.error
    assert await sessions.alive(set(opened)) == set(opened[10:])
    assert [s["pid"] for s in outcome.run.evidence["terminated"]] == opened[:10]
    [decision] = [d for d in outcome.decisions if d.kind == "acted"]
    assert decision.reason == (
        "acted; terminated the oldest 10 of 12 sessions idle in transaction; 2 left "
        "(guards.blast_radius.max_sessions_per_run leaves 10 for this run)"
    )
    assert outcome.actions[0].change == {"sessions": 10}


async def test_the_playbooks_own_cap_is_reported_too(
    make_daemon: MakeDaemon,
    registry: Registry,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    sessions: Sessions,
) -> None:
    db = databases.target
    opened = await oldest_first(sessions, roles, db, 3)
    await past_threshold()
    daemon = await start(
        make_daemon,
        registry,
        {db: database(postgres_server, roles.remediator, db)},
        mode="shadow",
        params={"max_sessions": 2},
    )

    outcome = await fire(daemon, db)

    assert outcome.run.state == "shadow", outcome.run.error
    assert await sessions.alive(set(opened)) == set(opened)
    assert outcome.run.evidence["notes"] == [
        "would terminate the oldest 2 of 3 sessions idle in transaction; 1 left "
        "(the playbook's max_sessions is 2)"
    ]
