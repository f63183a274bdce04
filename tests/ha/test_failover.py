"""The acting replica dies, or freezes past its lease, in the middle of a rolling restart.

A StatefulSet's pods are evicted one at a time, each after the previous replacement is Ready;
the cache is broken, so the first replacement never becomes Ready and the run waits. Whatever
happens to the replica running it, the pods it did not evict are never evicted by anyone: the
other replica fences it once its lease has expired, reconciles its run as a restart does
(reported and escalated, once, with what was and was not done) and a replica that wakes after
being fenced cannot act any more (its intent is refused in the same transaction that checks
its lease) and leaves.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from remediator_testing.alerts import alert, notification
from remediator_testing.replicas import ReplicaProcess, Replicas
from tests.ha.conftest import CHECK_SECONDS, HA, LEASE_SECONDS, TOKEN, gather_posts
from tests.kubernetes.helpers import START, labels
from tests.reports.helpers import text_of

PLAYBOOK = "statefulset-rolling-restart"
PARAMS = {PLAYBOOK: {"params": {"pod_ready_deadline_seconds": 120}}}
# Fenced at most a lease after the last heartbeat, noticed within a check, then reconciled and
# paged through the outbox: generous on a loaded 2-core machine.
FAILOVER_WITHIN = LEASE_SECONDS + CHECK_SECONDS + 10


def evictions(ha: HA) -> list[Any]:
    return [r for r in ha.emu.requests if r.method == "POST" and r.path.endswith("/eviction")]


def ready(ha: HA) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in ha.emu.pods("shop", "app=redis")
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
    )


def uids(ha: HA) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in ha.emu.pods("shop", "app=redis")}


async def rolling_restart_under_way(ha: HA) -> tuple[Replicas, ReplicaProcess, dict[str, str]]:
    """Two replicas; both receive the alert; the one that claimed the run evicted redis-2 and
    waits for a replacement that will not become Ready. Returns the group, the acting replica
    and the pods' uids before."""
    ha.emu.add_statefulset("shop", "redis", replicas=3, image="redis:7")
    await ha.emu.wait_for(lambda: len(ready(ha)) == 3, what="3 ready redis pods")
    group = await ha.start(
        2, playbooks=PARAMS, guards={"blast_radius": {"max_pods_per_episode": 3}}
    )
    ha.emu.set_template_health("shop", "redis", image="redis:7", healthy=False)
    before = uids(ha)
    payload = notification([alert(labels("RedisCacheDown", statefulset="redis"), starts_at=START)])
    assert await gather_posts([member.post(payload, token=TOKEN) for member in group]) == [200, 200]
    await ha.until(
        "the first eviction's outcome",
        lambda: ha.query("SELECT 1 FROM actions WHERE state = 'succeeded'"),
    )
    acting = await ha.acting(group)
    return group, acting, before


async def reconciled_once(ha: HA, group: Replicas, gone: ReplicaProcess) -> dict[str, Any]:
    """The survivor fenced `gone`, reconciled its run and paged once; returns the page."""
    [page] = await ha.pagerduty.wait_for(1, within=FAILOVER_WITHIN)
    [survivor] = [member for member in group if member is not gone]
    [(episode_id, run_id, state, error)] = await ha.query(
        "SELECT episode_id, id, state, error FROM runs"
    )
    assert (page["event_action"], page["dedup_key"]) == ("trigger", episode_id)
    assert PLAYBOOK in page["payload"]["summary"]
    assert state == "interrupted"
    assert error.startswith(f"{PLAYBOOK} on StatefulSet/shop/redis (run {run_id}) was cut"), error
    assert "done: evict pod shop/redis-2 of StatefulSet/shop/redis; not done: redis-1, redis-0" in (
        error
    )
    # Fenced by the survivor, once.
    fenced = await ha.query(
        "SELECT name, fenced_at, fenced_by FROM replicas WHERE fenced_at IS NOT NULL"
    )
    assert len(fenced) == 1 and gone.hostname in fenced[0]["name"], fenced
    [(survivor_name,)] = await ha.query(
        "SELECT name FROM replicas WHERE id = $1", fenced[0]["fenced_by"]
    )
    assert survivor.hostname in survivor_name
    # The episode's Slack thread says it too, and nothing more is left to deliver or run.
    await ha.until(
        "the Slack report",
        lambda: [t for t in map(text_of, ha.slack.messages) if "nterrupted" in t],
    )
    await ha.until("the survivor to have nothing left to do", lambda: ha.settled(group))
    assert len(ha.pagerduty.events) == 1
    [(reasons,)] = await ha.query("SELECT count(*) FROM escalations")
    assert reasons == 1
    return page


async def test_sigkill_of_the_acting_replica_mid_rolling_restart_is_reconciled_once(
    ha: HA,
) -> None:
    group, acting, before = await rolling_restart_under_way(ha)

    killed_at = time.monotonic()
    acting.kill()
    await reconciled_once(ha, group, acting)
    failover = time.monotonic() - killed_at

    # Nothing was re-run: one eviction in all, the two other pods are the ones from before.
    assert len(evictions(ha)) == 1
    after = uids(ha)
    assert (after["redis-1"], after["redis-0"]) == (before["redis-1"], before["redis-0"])
    [(actions,)] = await ha.query("SELECT count(*) FROM actions")
    assert actions == 1
    print(f"failover: paged {failover:.1f} s after the SIGKILL")
    assert failover < FAILOVER_WITHIN, failover


async def test_a_replica_frozen_past_its_lease_does_not_act_when_it_wakes(ha: HA) -> None:
    group, acting, before = await rolling_restart_under_way(ha)

    acting.freeze()  # SIGSTOP: a GC pause, a frozen VM, a partition
    await reconciled_once(ha, group, acting)
    # The cache recovers while the frozen replica sleeps: when it wakes, its run would see the
    # replacement Ready and evict the next pod, were it not fenced.
    ha.emu.set_template_health("shop", "redis", image="redis:7", healthy=True)
    await ha.emu.wait_for(lambda: len(ready(ha)) == 3, timeout_s=10, what="redis-2 Ready again")
    acting.thaw()  # SIGCONT

    # It finds itself fenced and leaves (non-zero: the orchestrator restarts it as a new
    # replica); whatever its run tried meanwhile was refused before any call.
    code = await asyncio.to_thread(acting.wait_exit, 30)
    assert code != 0, acting.log()
    assert "fenced" in acting.log()
    assert len(evictions(ha)) == 1
    after = uids(ha)
    assert (after["redis-1"], after["redis-0"]) == (before["redis-1"], before["redis-0"])
    [(actions,)] = await ha.query("SELECT count(*) FROM actions")
    assert actions == 1
    assert len(ha.pagerduty.events) == 1

    # Restarted by its orchestrator, it joins as a new replica, and there is still nothing to do.
    newcomer = await group.add()
    await ha.until("the group to settle", lambda: ha.settled(group))
    status, reply = await newcomer.get_json("/readyz")
    assert status == 200, reply
    assert len(evictions(ha)) == 1


def scale_patches(ha: HA) -> list[Any]:
    return [
        r
        for r in ha.emu.requests
        if r.method == "PATCH" and r.path.endswith("/deployments/consumer/scale")
    ]


@pytest.mark.xfail(
    strict=True,
    reason="known gap (#16): interrupt_unfinished marks the dead replica's runs interrupted in "
    "one transaction before each is read back, reported and escalated; a reconciler killed in "
    "between leaves the run 'interrupted' ('the daemon stopped during the run') with no "
    "report and no page, and no later reconciliation looks at it (it holds no running run). "
    "The same holds for a single process killed during its start-up reconciliation.",
)
async def test_a_replica_killed_while_reconciling_another_leaves_nothing_unreconciled(
    ha: HA,
) -> None:
    """The replica that fenced a dead one dies in the middle of reconciling it: a third replica
    must still reconcile what the first one held (a run cut during its call, reported once)."""
    ha.emu.add_deployment("shop", "consumer", replicas=3)
    await ha.emu.wait_rolled_out("shop", "consumer")
    # The API server applies the scale-up and answers only after a minute: the acting replica
    # dies first, with an intent and no outcome.
    ha.emu.faults.add(
        path_regex="/deployments/consumer/scale$", method="PATCH", answer_after_s=60, times=1
    )
    group = await ha.start(
        3, playbooks={"scale-on-lag": {"params": {"partitions": 12, "cooldown_seconds": 0}}}
    )
    firing = alert(
        labels("KafkaLagHigh", deployment="consumer", consumergroup="ingest", topic="ticks"),
        starts_at=START,
    )
    payload = notification([firing])
    assert await gather_posts([m.post(payload, token=TOKEN) for m in group]) == [200] * 3

    def replicas() -> int:
        return int(ha.emu.get("apps/v1", "deployments", "shop", "consumer")["spec"]["replicas"])

    await ha.until("the scale-up to apply", lambda: replicas() == 5)
    acting = await ha.acting(group)
    # Reading the scale back (what reconciliation does with an intent and no outcome) is slow:
    # the replica that fences the acting one is still reconciling when it is killed.
    ha.emu.faults.add(path_regex="/deployments/consumer(/scale)?$", method="GET", latency_s=5)
    acting.kill()

    async def fenced_by() -> str | None:
        rows = await ha.query("SELECT fenced_by FROM replicas WHERE fenced_at IS NOT NULL")
        return rows[0]["fenced_by"] if rows else None

    fencer_id = await ha.until("the acting replica to be fenced", fenced_by, within=20)
    [(fencer_name,)] = await ha.query("SELECT name FROM replicas WHERE id = $1", fencer_id)
    fencer = group.by_name(fencer_name)
    fencer.kill()
    ha.emu.faults.clear()

    # Fenced within a lease and a check of the kill, then reconciled again without the slow
    # read: well within 15 s.
    [page] = await ha.pagerduty.wait_for(1, within=15)
    summary = page["payload"]["summary"]
    assert "found applied: scale Deployment/shop/consumer from 3 to 5 replicas" in summary
    await ha.until("the last replica to have nothing left to do", lambda: ha.settled(group))
    runs = await ha.query("SELECT state FROM runs")
    assert [run["state"] for run in runs] == ["interrupted"]
    assert len(ha.pagerduty.events) == 1
    assert len(scale_patches(ha)) == 1
