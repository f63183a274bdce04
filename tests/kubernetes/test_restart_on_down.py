"""restart-on-down: rollout restart, roll back if it does not roll out, then escalate."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubernetes.helpers import Cluster, labels

PLAYBOOK = "restart-on-down"
PATH = "/apis/apps/v1/namespaces/shop/deployments/api"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def down(**extra: str) -> dict[str, str]:
    return labels("ServiceDown", deployment="api", job="technical-analysis", **extra)


def pod_uids(cluster: Cluster) -> set[str]:
    return {p["metadata"]["uid"] for p in cluster.emu.pods("shop", "app=api")}


def images(cluster: Cluster) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in cluster.emu.pods("shop", "app=api")}


async def deploy(cluster: Cluster, image: str) -> None:
    """A new version rolled out by someone else (a CD system), before the alert."""
    await cluster.patch(
        PATH, {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}}
    )
    await cluster.emu.wait_rolled_out("shop", "api")


async def test_restart_replaces_every_pod_with_a_new_revision(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await cluster.emu.wait_rolled_out("shop", "api")
    before = pod_uids(cluster)
    await cluster.start("restart_on_down")

    outcome = await cluster.fire(down())

    assert outcome.run.state == "acted", outcome.run.error
    [action] = outcome.actions
    stamp = action.body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert (action.verb, action.resource, action.object, action.state) == (
        "patch",
        PATH,
        "Deployment/shop/api",
        "succeeded",
    )
    [patch] = cluster.changes()
    assert (patch.method, patch.path, patch.body) == ("PATCH", PATH, action.body)
    deployment = cluster.deployment("api")
    assert deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == stamp
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert pod_uids(cluster).isdisjoint(before) and len(pod_uids(cluster)) == 2
    assert outcome.run.evidence["restart"]["done"] is True
    assert outcome.escalations == []
    watched = [c for c in outcome.calls if c["verb"] == "watch"]
    assert watched and watched[0]["body"]["until"] == "rolled out"


async def test_shadow_records_the_restart_and_changes_nothing(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await deploy(cluster, "api:2")
    before = pod_uids(cluster)
    await cluster.start("restart_on_down", mode="shadow")

    outcome = await cluster.fire(down())

    assert outcome.run.state == "shadow"
    [action] = outcome.actions
    assert (action.verb, action.resource, action.state) == ("patch", PATH, "would")
    assert set(action.body["spec"]["template"]["metadata"]["annotations"]) == {RESTARTED_AT}
    assert cluster.changes()[1:] == []  # only the test's own deploy
    assert pod_uids(cluster) == before
    fallback = outcome.run.evidence["if_the_restart_stalls"]["roll_back_to"]
    assert (fallback["revision"], fallback["images"]) == (1, ["api:1"])


async def test_a_restart_that_does_not_roll_out_is_rolled_back(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await deploy(cluster, "api:2")
    cluster.emu.set_template_health("shop", "api", image="api:2", healthy=False)
    await cluster.start("restart_on_down", params={PLAYBOOK: {"rollout_deadline_seconds": 0.5}})

    outcome = await cluster.fire(down())

    assert outcome.run.state == "acted", outcome.run.error
    restart, rollback = outcome.actions
    assert "rollout restart" in restart.summary
    assert rollback.summary == (
        "roll back Deployment/shop/api from revision 3 (api:2) to revision 1 (api:1)"
    )
    [operation] = rollback.body
    assert (operation["op"], operation["path"]) == ("replace", "/spec/template")
    assert operation["value"]["spec"]["containers"][0]["image"] == "api:1"
    assert "pod-template-hash" not in operation["value"]["metadata"]["labels"]
    sent = [r for r in cluster.changes() if r.content_type == "application/json-patch+json"]
    assert [r.body for r in sent] == [rollback.body]
    await cluster.emu.wait_rolled_out("shop", "api")
    assert images(cluster) == {"api:1"}
    evidence = outcome.run.evidence
    assert (
        evidence["restart"]["done"] is False
        and "not rolled out within 0.5 s" in (evidence["restart"]["reason"])
    )
    assert evidence["rollback"]["done"] is True
    assert outcome.escalations == []


async def test_when_the_rollback_does_not_help_either_it_escalates(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await deploy(cluster, "api:2")
    for image in ("api:1", "api:2"):
        cluster.emu.set_template_health("shop", "api", image=image, healthy=False)
    await cluster.start("restart_on_down", params={PLAYBOOK: {"rollout_deadline_seconds": 0.3}})

    outcome = await cluster.fire(down())

    assert outcome.run.state == "acted"
    assert len(outcome.actions) == 2
    [escalation] = outcome.escalations
    assert escalation.reason.startswith(
        "neither the rollout restart of Deployment/shop/api (not rolled out within 0.3 s"
    )
    assert "nor the rollback to revision 1" in escalation.reason


async def test_no_earlier_revision_escalates_after_the_restart(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=1, image="api:1")
    cluster.emu.set_template_health("shop", "api", image="api:1", healthy=False)
    await cluster.start("restart_on_down", params={PLAYBOOK: {"rollout_deadline_seconds": 0.3}})

    outcome = await cluster.fire(down())

    assert [a.state for a in outcome.actions] == ["succeeded"]
    [escalation] = outcome.escalations
    assert "no earlier revision running different code" in escalation.reason


async def test_a_paused_deployment_is_refused(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=1, paused=True)
    await cluster.start("restart_on_down")

    outcome = await cluster.fire(down())

    assert outcome.run.state == "refused"
    assert outcome.run.error == (
        "precondition: Deployment/shop/api is paused; a rollout restart would not roll out"
    )
    assert outcome.actions == [] and cluster.changes() == []
    [escalation] = outcome.escalations
    assert "is paused" in escalation.reason


async def test_without_a_kubernetes_client_the_playbook_is_refused(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=1)
    await cluster.start("restart_on_down", kube={"mode": "none"})

    outcome = await cluster.fire(down())

    assert outcome.runs == []
    [decision] = [d for d in outcome.decisions if d.kind == "refused"]
    assert decision.reason.startswith("needs the kube client")
    assert [e.reason for e in outcome.escalations] == [decision.reason]
    assert cluster.emu.requests == []


def _first_patch_body(cluster: Cluster) -> Any:
    return next(r.body for r in cluster.changes() if r.status == 200)


@pytest.mark.parametrize("alertname", ["IngestionEngineDown", "ApplicationDown"])
async def test_every_down_alert_restarts(cluster: Cluster, alertname: str) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=1)
    await cluster.start("restart_on_down")

    outcome = await cluster.fire(labels(alertname, deployment="api", job="x"))

    assert outcome.run.playbook == PLAYBOOK and outcome.run.state == "acted"
    assert RESTARTED_AT in str(_first_patch_body(cluster))
