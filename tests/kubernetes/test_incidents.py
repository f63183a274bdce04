"""Incidents: "never twice" and "back to the baseline" hold per target across alert episodes.

A crash-looping Deployment's replacement pod fires its own alert (a new episode), and a lag
alert can re-fire during the previous episode's scale-back cool-down; both belong to the
incident the first episode opened.
"""

from __future__ import annotations

from tests.admin.helpers import admin_config, call
from tests.conftest import BOTH_BACKENDS
from tests.kubernetes.helpers import Cluster
from tests.kubernetes.test_restart_crashloop import OLD, PLAYBOOK, all_crashing, crash, looping
from tests.kubernetes.test_scale import LAG, lag

pytestmark = BOTH_BACKENDS

QUICK_FOLLOW_UP = {PLAYBOOK: {**OLD[PLAYBOOK], "follow_up_seconds": 0.1}}


def evictions(cluster: Cluster) -> list[str]:
    return [r.path for r in cluster.changes() if r.path.endswith("/eviction")]


async def escalated_crash_loop(cluster: Cluster, **extra: object) -> tuple[str, str]:
    """One pod of `api` crash-looping, evicted, its replacement crash-looping too, and the
    follow-up's escalation ("not restarting again"). Returns (first pod, replacement)."""
    pod = await all_crashing(cluster, replicas=1)
    await cluster.start("restart_crashloop", params=QUICK_FOLLOW_UP, extra=admin_config(**extra))
    fired = await cluster.fire(crash(pod))
    assert fired.run.state == "acted", fired.run.error
    await cluster.emu.wait_for(
        lambda: any(p != pod for p in looping(cluster)), what="the replacement to crash-loop"
    )
    [replacement] = [p for p in looping(cluster) if p != pod]
    cluster.clock.advance(0.1)
    assert await cluster.run_timers() == 1  # the follow-up
    [escalation] = (await cluster.outcome(fired.episode.id)).escalations
    assert "not restarting again" in escalation.reason
    return pod, replacement


async def test_the_replacement_of_an_escalated_crash_loop_is_not_evicted(
    cluster: Cluster,
) -> None:
    pod, replacement = await escalated_crash_loop(cluster)

    held = await cluster.fire(crash(replacement))  # a new pod, so a new episode

    assert held.runs == [] and held.actions == []
    assert evictions(cluster) == [f"/api/v1/namespaces/shop/pods/{pod}/eviction"]
    assert replacement in {p["metadata"]["name"] for p in cluster.emu.pods("shop")}
    [decision] = [d for d in held.decisions if d.kind == "held"]
    assert decision.reason.startswith(
        "held: incident 1 of restart-crashloop on Deployment/shop/api"
    )
    assert "not restarting again" in decision.reason
    assert held.escalations == []  # it joins the incident's escalation: no second page

    status, listed = await call(daemon_of(cluster), "GET", "/admin/incidents")
    assert status == 200
    [incident] = listed["incidents"]
    assert (incident["state"], incident["target_key"]) == ("held", "Deployment/shop/api")
    status, detail = await call(daemon_of(cluster), "GET", f"/admin/incidents/{incident['id']}")
    assert status == 200
    assert [(e["episode_id"], e["how"]) for e in detail["episodes"]] == [
        (detail["episodes"][0]["episode_id"], "acted"),
        (held.episode.id, "held"),
    ]

    # An operator clears it: the next alert of the workload may act again.
    status, cleared = await call(
        daemon_of(cluster),
        "POST",
        f"/admin/incidents/{incident['id']}/clear",
        json={"reason": "fixed the config map"},
    )
    assert (status, cleared["state"], cleared["closed_by"]) == (200, "closed", "alice")
    again = await cluster.fire(crash(replacement), minutes=1)
    assert again.run.state == "acted", again.run.error
    assert len(evictions(cluster)) == 2
    status, _ = await call(
        daemon_of(cluster),
        "POST",
        f"/admin/incidents/{incident['id']}/clear",
        json={"reason": "twice"},
    )
    assert status == 409


async def test_a_held_incident_ends_after_its_quiet_period(cluster: Cluster) -> None:
    _, replacement = await escalated_crash_loop(cluster, incidents={"quiet_seconds": 600})
    cluster.clock.advance(601)  # no alert of the incident for longer than its quiet period

    outcome = await cluster.fire(crash(replacement))

    assert outcome.run.state == "acted", outcome.run.error
    assert len(evictions(cluster)) == 2


def daemon_of(cluster: Cluster) -> object:
    assert cluster.daemon is not None
    return cluster.daemon


async def test_a_re_fire_during_the_cool_down_scales_back_to_the_baseline(
    cluster: Cluster,
) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=3)
    # The cool-down outlasts the re-fire and its resolve, as in production (300 s).
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 12, "cooldown_seconds": 300}})
    first = await cluster.fire(lag())
    assert cluster.replicas("consumer") == 5
    await cluster.resolve(lag())
    # Fires again within the cool-down: a new episode of the same trouble.
    second = await cluster.fire(lag(), minutes=10)
    assert cluster.replicas("consumer") == 7
    await cluster.resolve(lag(), minutes=10)
    assert await cluster.run_timers() == 0  # both wait for their cool-down

    cluster.clock.advance(300)
    assert [t.kind for t in await cluster.due_timers()].count("revert") == 2
    await cluster.run_timers()  # with the verifications (a bake of 5 minutes too)
    timers = [t for e in (first, second) for t in await cluster.timers(e.episode.id, "revert")]
    assert [t.state for t in timers] == ["done", "done"]

    assert cluster.replicas("consumer") == 3  # the baseline before the incident, not 5
    one = await cluster.outcome(first.episode.id)
    two = await cluster.outcome(second.episode.id)
    assert one.decisions[-1].reason == (
        f"revert left to episode {second.episode.id} of the same incident (1), whose revert "
        "is still to come"
    )
    assert (two.decisions[-1].kind, two.decisions[-1].reason) == (
        "reverted",
        "reverted after the alert resolved: scale Deployment/shop/consumer from 7 to 3 replicas",
    )
    assert one.escalations == [] and two.escalations == []
    scales = [r.body for r in cluster.changes() if r.path.endswith("/consumer/scale")]
    assert scales == [{"spec": {"replicas": n}} for n in (5, 7, 3)]

    # The checks that the scale-ups stuck come due later: the incident's own scale-back to
    # the baseline is not an undo by someone else, for either episode.
    cluster.clock.advance(400)
    await cluster.run_timers()
    one = await cluster.outcome(first.episode.id)
    two = await cluster.outcome(second.episode.id)
    assert one.escalations == [] and two.escalations == []
    checks = [d.reason for d in one.decisions if "stuck" in d.reason]
    assert checks == [
        "no check that 'scale Deployment/shop/consumer from 3 to 5 replicas' stuck: changed "
        "again by remediator since (scale Deployment/shop/consumer from 7 to 3 replicas)"
    ], one.decisions


async def test_a_scale_back_that_cannot_restore_the_baseline_escalates(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=3)
    await cluster.start("scale_on_lag", params={LAG: {"partitions": 12, "cooldown_seconds": 0}})
    fired = await cluster.fire(lag())
    await cluster.patch(
        "/apis/apps/v1/namespaces/shop/deployments/consumer", {"spec": {"replicas": 9}}
    )
    await cluster.resolve(lag())
    assert await cluster.run_timers() == 1  # the scale-back, due at once

    assert cluster.replicas("consumer") == 9
    outcome = await cluster.outcome(fired.episode.id)
    reason = (
        "not reverted: Deployment/shop/consumer was not scaled back: replicas are 9, not the 5 "
        "it set"
    )
    assert (outcome.decisions[-1].kind, outcome.decisions[-1].reason) == ("failed", reason)
    assert [e.reason for e in outcome.escalations] == [reason]
