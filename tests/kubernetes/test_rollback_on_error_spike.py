"""rollback-on-error-spike: roll back only a recent rollout of different code; else escalate."""

from __future__ import annotations

import pytest

from tests.kubernetes.helpers import Cluster, labels

PLAYBOOK = "rollback-on-error-spike"
PATH = "/apis/apps/v1/namespaces/shop/deployments/api"


def errors() -> dict[str, str]:
    return labels("HighErrorRate", deployment="api") | {"severity": "critical"}


def images(cluster: Cluster) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in cluster.emu.pods("shop", "app=api")}


async def deployed_twice(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await cluster.emu.wait_rolled_out("shop", "api")
    await cluster.patch(
        PATH, {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    )
    await cluster.emu.wait_rolled_out("shop", "api")


@pytest.mark.parametrize("mode", ["auto", "shadow"])
async def test_a_recent_rollout_is_rolled_back(cluster: Cluster, mode: str) -> None:
    await deployed_twice(cluster)
    await cluster.start("rollback_on_error_spike", mode=mode)
    deploys = len(cluster.changes())

    outcome = await cluster.fire(errors())

    [action] = outcome.actions
    assert action.summary == (
        "roll back Deployment/shop/api from revision 2 (api:2) to revision 1 (api:1)"
    )
    assert action.body[0]["value"]["spec"]["containers"][0]["image"] == "api:1"
    revisions = outcome.run.evidence["revisions"]
    assert (revisions["current"]["revision"], revisions["previous"]["revision"]) == (2, 1)
    sent = cluster.changes()[deploys:]
    if mode == "shadow":
        assert (outcome.run.state, action.state, sent) == ("shadow", "would", [])
        assert images(cluster) == {"api:2"}
        return
    assert outcome.run.state == "acted"
    assert [(r.path, r.content_type, r.body) for r in sent] == [
        (PATH, "application/json-patch+json", action.body)
    ]
    await cluster.emu.wait_rolled_out("shop", "api")
    assert images(cluster) == {"api:1"}
    deployment = cluster.deployment("api")
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert outcome.run.evidence["rollback"]["done"] is True
    assert outcome.escalations == []


async def test_an_old_rollout_is_not_rolled_back_but_escalated(cluster: Cluster) -> None:
    await deployed_twice(cluster)
    await cluster.start(
        "rollback_on_error_spike", params={PLAYBOOK: {"rollout_window_seconds": 0.01}}
    )
    deploys = len(cluster.changes())

    outcome = await cluster.fire(errors())

    assert (outcome.run.state, outcome.actions) == ("noop", [])
    assert cluster.changes()[deploys:] == []
    [escalation] = outcome.escalations
    assert "not within 0.01 s: the errors do not follow a deploy" in escalation.reason


async def test_a_restart_is_not_a_rollout_to_undo(cluster: Cluster) -> None:
    cluster.emu.add_deployment("shop", "api", replicas=1, image="api:1")
    await cluster.emu.wait_rolled_out("shop", "api")
    restarted = {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
    await cluster.patch(PATH, {"spec": {"template": {"metadata": {"annotations": restarted}}}})
    await cluster.emu.wait_rolled_out("shop", "api")
    await cluster.start("rollback_on_error_spike")

    outcome = await cluster.fire(errors())

    assert outcome.actions == []
    [escalation] = outcome.escalations
    assert escalation.reason == (
        "Deployment/shop/api has no earlier revision running different code"
    )
    assert outcome.run.evidence["revisions"]["current"]["revision"] == 2
