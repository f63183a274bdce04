"""GitOps: a Deployment Argo CD or Flux manages is changed only as the policy says, and every
change is checked later for having stuck.

The emulator's GitOps controllers (remediator_testing.kube.gitops) behave like Argo CD with
self-heal and like Flux: they hold Git's state of the objects they marked and put back drift
after a short delay; Flux leaves an object alone under its `reconcile: disabled` switch. Tests
wait for the controllers' own records (`reverts`, `held_back`, `passes`), advance the daemon's
clock and drive the durable timers themselves (`Cluster.run_timers`), never sleeping.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from remediator.config import ConfigError, load_settings
from remediator_testing.alerts import alert, body, notification
from remediator_testing.fakes import FakeSlack
from remediator_testing.kube.gitops import GitOpsApp
from tests.kubernetes.helpers import Cluster, labels, until
from tests.kubernetes.test_rollback_on_error_spike import deployed_twice, errors
from tests.kubernetes.test_scale import lag
from tests.reports.helpers import CHANNEL, SLACK_TOKEN, text_of

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
DRIFT_DETECTION = "helm.toolkit.fluxcd.io/driftDetection"
SUSPENDED_BY = "remediator/suspended-by"
LAG = {"scale-on-lag": {"partitions": 12}}
# The controllers put drift back this long after they first see it.
REVERT_AFTER = 0.05


def app_of(cluster: Cluster, controller: str) -> GitOpsApp:
    gitops = cluster.emu.gitops
    if controller == "argocd":
        return gitops.argocd("shop-apps", revert_after=REVERT_AFTER)
    if controller == "argocd-label":
        return gitops.argocd("shop-apps", revert_after=REVERT_AFTER, label_tracking=True)
    return gitops.flux("apps", revert_after=REVERT_AFTER, helm=controller == "flux-helm")


OWNERS = {
    "argocd": "Argo CD application shop-apps",
    "argocd-label": "Argo CD application shop-apps",
    "flux": "Flux Kustomization flux-system/apps",
    "flux-helm": "Flux HelmRelease flux-system/apps",
}


CHECK_AFTER = 0.001  # seconds of the daemon's clock between a change and its check


def gitops(controller: str, **policy: str) -> dict[str, Any]:
    """The `gitops` section: `policy` for the controller, checks `CHECK_AFTER` later."""
    section: dict[str, Any] = {"check_after_seconds": CHECK_AFTER}
    if controller.startswith("argocd"):
        section["argocd"] = {
            "policy": policy,
            "check_after_seconds": CHECK_AFTER,
            "label_tracking": controller == "argocd-label",
        }
    else:
        section["flux"] = {"policy": policy, "check_after_seconds": CHECK_AFTER}
    return {"gitops": section}


async def run_checks(cluster: Cluster) -> int:
    """Let the checks' delay pass on the daemon's clock and run the timers that came due."""
    cluster.clock.advance(CHECK_AFTER)
    return await cluster.run_timers()


@dataclass(frozen=True)
class Case:
    """One playbook and the Deployment it changes, under a GitOps controller."""

    kind: str  # scale, rollback, restart
    module: str
    alert: Callable[[], dict[str, str]]
    deployment: str
    params: dict[str, Any]

    async def deploy(self, cluster: Cluster) -> None:
        if self.kind == "rollback":
            await deployed_twice(cluster)  # Git now says api:2
        else:
            cluster.emu.add_deployment("shop", self.deployment, replicas=2, image="api:1")
            await cluster.emu.wait_rolled_out("shop", self.deployment)

    def changed(self, cluster: Cluster) -> bool:
        """Whether the Deployment shows the playbook's change."""
        deployment = cluster.deployment(self.deployment)
        template = deployment["spec"]["template"]
        if self.kind == "scale":
            return bool(deployment["spec"]["replicas"] == 4)
        if self.kind == "rollback":
            return bool(template["spec"]["containers"][0]["image"] == "api:1")
        return RESTARTED_AT in (template["metadata"].get("annotations") or {})


def down() -> dict[str, str]:
    return labels("ServiceDown", deployment="api")


SCALE = Case("scale", "scale_on_lag", lag, "consumer", LAG)
ROLLBACK = Case("rollback", "rollback_on_error_spike", errors, "api", {})
RESTART = Case("restart", "restart_on_down", down, "api", {})
CASES = [SCALE, ROLLBACK, RESTART]


async def managed(cluster: Cluster, case: Case, controller: str) -> GitOpsApp:
    await case.deploy(cluster)
    app = app_of(cluster, controller)
    app.manage("apps/v1", "deployments", "shop", case.deployment)
    return app


async def passes(cluster: Cluster, app: GitOpsApp, count: int = 3) -> None:
    """Let the controller compare the object with Git a few more times."""
    enough = app.passes + count
    await until(lambda: app.passes >= enough)


GIT_CHANGES = {
    "scale": "set spec.replicas: 4 in the manifest of Deployment shop/consumer",
    "rollback": "set spec.template.spec.containers[api].image: api:1 in the manifest of "
    "Deployment shop/api",
    "restart": 'set spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]: ',
}


@pytest.mark.parametrize("controller", ["argocd", "flux", "flux-helm"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_escalate_changes_nothing_and_names_the_change_to_make_in_git(
    cluster: Cluster, case: Case, controller: str
) -> None:
    await managed(cluster, case, controller)
    # scale and rollback escalate by default; the restart is set to here.
    policy = {"restart": "escalate"} if case.kind == "restart" else {}
    await cluster.start(case.module, params=case.params, extra=gitops(controller, **policy))
    before = len(cluster.changes())

    outcome = await cluster.fire(case.alert())

    assert cluster.changes()[before:] == []
    assert not case.changed(cluster)
    assert outcome.run.state == "refused"
    [action] = outcome.actions
    assert action.state == "refused"
    [escalation] = outcome.escalations
    owner = OWNERS[controller]
    assert f"{owner} manages Deployment/shop/{case.deployment}" in escalation.reason
    assert f"{case.kind} policy: escalate" in escalation.reason
    assert GIT_CHANGES[case.kind] in escalation.reason
    if case.kind != "restart":
        assert escalation.reason.endswith(f", owned by {owner}")
    seen = outcome.run.evidence["gitops"][f"Deployment/shop/{case.deployment}"]
    assert seen.startswith(owner) and f"{case.kind}: escalate" in seen


@pytest.mark.parametrize("controller", ["argocd", "flux"])
async def test_act_on_a_scale_is_reverted_then_reported_and_escalated(
    cluster: Cluster, controller: str
) -> None:
    app = await managed(cluster, SCALE, controller)
    async with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as slack:
        slack_config = {"channel": CHANNEL, "token": SLACK_TOKEN, "base_url": slack.api_url}
        reports = {"reports": {"slack": slack_config, "batch_window_seconds": 0}}
        config = gitops(controller, scale="act") | reports
        params = {"scale-on-lag": {"partitions": 12, "cooldown_seconds": 0}}
        await cluster.start("scale_on_lag", params=params, extra=config)

        fired = await cluster.fire(lag())
        assert fired.run.state == "acted" and fired.escalations == []
        # The controller puts Git's 2 replicas back; then the check runs.
        await cluster.emu.wait_for(lambda: app.reverts != [], what="the controller's revert")
        assert cluster.replicas("consumer") == 2
        assert await run_checks(cluster) == 1

        outcome = await cluster.outcome(fired.episode.id)
        owner = OWNERS[controller]
        [undone] = [d for d in outcome.decisions if d.kind == "undone"]
        assert (
            f"scale Deployment/shop/consumer from 2 to 4 replicas did not stick: reverted by "
            f"{owner} within 0.001 s: spec.replicas is 2 again (it set 4)"
        ) in undone.reason
        assert "to make it last, set spec.replicas: 4 in the manifest of" in undone.reason
        [escalation] = outcome.escalations
        assert escalation.reason == undone.reason
        incidents = await cluster.daemon.engine.store.list_incidents()  # type: ignore[union-attr]
        assert [i.state for i in incidents] == ["held"]

        # The thread shows the owner with the run and, later, that the change was undone.
        def shown() -> str:
            return "\n".join(text_of(m) for m in slack.messages)

        await until(lambda: "The change did not stick" in shown(), timeout_s=10)
        assert f"{owner} (" in shown() and "scale: act" in shown()
        assert f"reverted by {owner}" in shown()

        # After the resolve, the scale-back finds Git's count back already: nothing to do,
        # and nobody is called a second time.
        await cluster.resolve(lag())
        assert await cluster.run_timers() == 1
        outcome = await cluster.outcome(fired.episode.id)
        assert outcome.decisions[-1].reason == "revert: nothing to revert"
        assert len(outcome.escalations) == 1 and len(outcome.acted()) == 1


@pytest.mark.parametrize("controller", ["argocd", "flux"])
async def test_a_restart_under_the_default_act_holds_and_is_checked(
    cluster: Cluster, controller: str
) -> None:
    app = await managed(cluster, RESTART, controller)
    await cluster.start("restart_on_down", extra=gitops(controller))

    fired = await cluster.fire(down())

    assert fired.run.state == "acted"
    assert fired.run.evidence["gitops"]["Deployment/shop/api"].endswith("restart: act")
    await passes(cluster, app)  # the restart annotation is not in Git: nothing to put back
    assert app.reverts == [] and RESTART.changed(cluster)
    assert await run_checks(cluster) == 1
    outcome = await cluster.outcome(fired.episode.id)
    [checked] = [d for d in outcome.decisions if d.kind == "checked"]
    assert checked.reason.startswith("still in effect 0.001 s later: rollout restart")
    assert outcome.escalations == []


SUSPEND = {"check_after_seconds": 3600.0}


def suspend_config(helm: bool = False, **flux: Any) -> dict[str, Any]:
    policy = {"scale": "suspend", "rollback": "suspend", "restart": "suspend"}
    return {"gitops": {"flux": {"policy": policy, **SUSPEND, **flux}}}


def switches(cluster: Cluster, case: Case) -> dict[str, str]:
    annotations = cluster.deployment(case.deployment)["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k in (RECONCILE, DRIFT_DETECTION, SUSPENDED_BY)}


async def suspended_change(
    cluster: Cluster, case: Case, app: GitOpsApp, switch: str = RECONCILE
) -> str:
    """Fire; the run suspends Flux on the Deployment, then changes it, and the change holds.
    Returns the episode."""
    fired = await cluster.fire(case.alert())
    assert fired.run.state == "acted", fired.run.error
    suspend, change = fired.actions
    assert suspend.summary.startswith(
        f"suspend {OWNERS['flux-helm' if switch == DRIFT_DETECTION else 'flux']}'s "
        f"reconciliation of Deployment/shop/{case.deployment} until "
    )
    assert suspend.body["metadata"]["annotations"][switch] == "disabled"
    assert change.state == "succeeded" and case.changed(cluster)
    found = switches(cluster, case)
    assert found[switch] == "disabled"
    assert found[SUSPENDED_BY].startswith(f"{fired.episode.id} run {fired.run.id} until ")
    if case.kind == "restart":  # not in Git: Flux would have left it alone anyway
        await passes(cluster, app)
    else:  # Flux sees the drift and holds back: the change holds.
        await cluster.emu.wait_for(lambda: app.held_back != [], what="Flux holding back")
    assert app.reverts == [] and case.changed(cluster)
    return fired.episode.id


async def restored(
    cluster: Cluster, episode_id: str, case: Case, app: GitOpsApp, when: str
) -> None:
    """The run's suspension was lifted; Flux then takes the object back to Git."""
    assert switches(cluster, case) == {}
    outcome = await cluster.outcome(episode_id)
    [resumed] = [d for d in outcome.decisions if d.kind == "resumed"]
    assert resumed.reason.endswith(f"'s reconciliation of Deployment/shop/{case.deployment} {when}")
    assert outcome.actions[-1].summary.startswith("restore Flux ")
    if case.kind == "restart":
        await passes(cluster, app)
        assert app.reverts == [] and case.changed(cluster)
        return
    await cluster.emu.wait_for(lambda: app.reverts != [], what="Flux reconciling again")
    assert not case.changed(cluster)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
async def test_suspend_acts_the_change_holds_and_the_switch_is_restored_on_resolve(
    cluster: Cluster, case: Case
) -> None:
    app = await managed(cluster, case, "flux")
    await cluster.start(case.module, params=case.params, extra=suspend_config())
    episode = await suspended_change(cluster, case, app)

    await cluster.resolve(case.alert())
    assert await cluster.run_timers() == 1

    await restored(cluster, episode, case, app, "after the alert resolved")
    # The deadline's timer finds nothing of its run left to restore.
    deadline = [t for t in await cluster.timers(episode, "gitops_resume") if t.state == "waiting"]
    assert len(deadline) == 1 and deadline[0].payload["when"] == "deadline"


async def test_suspend_of_a_helm_release_turns_its_drift_detection_off(cluster: Cluster) -> None:
    app = await managed(cluster, SCALE, "flux-helm")
    await cluster.start("scale_on_lag", params=LAG, extra=suspend_config())
    episode = await suspended_change(cluster, SCALE, app, DRIFT_DETECTION)

    await cluster.resolve(lag())
    assert await cluster.run_timers() == 1

    assert switches(cluster, SCALE) == {}
    outcome = await cluster.outcome(episode)
    assert [d.kind for d in outcome.decisions].count("resumed") == 1


async def test_a_suspension_is_restored_after_a_daemon_restart(cluster: Cluster) -> None:
    app = await managed(cluster, SCALE, "flux")
    await cluster.start("scale_on_lag", params=LAG, extra=suspend_config())
    episode = await suspended_change(cluster, SCALE, app)

    await cluster.restart()
    await cluster.resolve(lag())
    assert await cluster.run_timers() == 1

    await restored(cluster, episode, SCALE, app, "after the alert resolved")


async def test_a_suspension_is_restored_at_its_deadline_while_the_alert_fires(
    cluster: Cluster,
) -> None:
    app = await managed(cluster, SCALE, "flux")
    await cluster.start("scale_on_lag", params=LAG, extra=suspend_config(suspend_seconds=0))
    episode = await suspended_change(cluster, SCALE, app)

    assert await cluster.run_timers() == 1

    await restored(cluster, episode, SCALE, app, "at its deadline")
    outcome = await cluster.outcome(episode)
    assert outcome.episode.status == "firing"


async def test_an_object_someone_else_suspended_is_changed_and_left_suspended(
    cluster: Cluster,
) -> None:
    app = await managed(cluster, SCALE, "flux")
    await cluster.patch(
        "/apis/apps/v1/namespaces/shop/deployments/consumer",
        {"metadata": {"annotations": {RECONCILE: "disabled"}}},
    )
    await cluster.start("scale_on_lag", params=LAG, extra=suspend_config())

    fired = await cluster.fire(lag())

    [change] = fired.actions
    assert change.state == "succeeded" and SCALE.changed(cluster)
    assert "not by remediator" in fired.run.evidence["gitops"]["Deployment/shop/consumer"]
    assert await cluster.timers(fired.episode.id, "gitops_resume") == []
    await cluster.emu.wait_for(lambda: app.held_back != [], what="Flux holding back")
    assert switches(cluster, SCALE) == {RECONCILE: "disabled"}


@pytest.mark.parametrize("marks", ["none", "instance-label"])
async def test_a_target_without_gitops_marks_is_changed_as_before_and_checked(
    cluster: Cluster, marks: str
) -> None:
    await SCALE.deploy(cluster)
    if marks == "instance-label":  # Helm sets it too: not Argo CD's unless label tracking is on
        await cluster.patch(
            "/apis/apps/v1/namespaces/shop/deployments/consumer",
            {"metadata": {"labels": {"app.kubernetes.io/instance": "shop"}}},
        )
    await cluster.start("scale_on_lag", params=LAG, extra=gitops("argocd"))

    fired = await cluster.fire(lag())

    [change] = fired.actions
    assert (change.state, change.change) == ("succeeded", {"replicas": [2, 4]})
    assert "gitops" not in fired.run.evidence
    assert await run_checks(cluster) == 1
    outcome = await cluster.outcome(fired.episode.id)
    assert [d.kind for d in outcome.decisions][-1] == "checked"


async def test_under_label_tracking_the_instance_label_names_the_argocd_application(
    cluster: Cluster,
) -> None:
    await managed(cluster, SCALE, "argocd-label")
    await cluster.start("scale_on_lag", params=LAG, extra=gitops("argocd-label"))

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "refused"
    seen = outcome.run.evidence["gitops"]["Deployment/shop/consumer"]
    assert seen == (
        "Argo CD application shop-apps (label app.kubernetes.io/instance); scale: escalate"
    )


async def test_a_change_overwritten_by_hand_is_reported_as_changed(cluster: Cluster) -> None:
    await SCALE.deploy(cluster)
    await cluster.start("scale_on_lag", params=LAG, extra=gitops("argocd"))
    fired = await cluster.fire(lag())
    await cluster.patch(
        "/apis/apps/v1/namespaces/shop/deployments/consumer", {"spec": {"replicas": 7}}
    )

    assert await run_checks(cluster) == 1

    outcome = await cluster.outcome(fired.episode.id)
    [escalation] = outcome.escalations
    assert (
        "did not stick: changed since by unknown within 0.001 s: spec.replicas is 7 now "
        "(it set 4, was 2)"
    ) in escalation.reason


@pytest.mark.parametrize(
    "config",
    [
        {"gitops": {"argocd": {"policy": {"scale": "suspend"}}}},
        {"playbooks": {"scale-on-lag": {"gitops": {"argocd": {"rollback": "suspend"}}}}},
    ],
)
def test_suspend_for_argocd_is_refused_by_the_configuration(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML

    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})

    [problem] = refused.value.problems
    assert "suspend is not supported for Argo CD" in problem


async def test_explain_online_names_the_owner_and_the_policies(
    cluster: Cluster, tmp_path: Path
) -> None:
    await managed(cluster, SCALE, "argocd")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "kubernetes": {"mode": "url", "url": cluster.emu.url},
                "playbooks": {"scale-on-lag": {"gitops": {"argocd": {"scale": "act"}}}},
            }
        )
    )
    payload = tmp_path / "payload.json"
    payload.write_bytes(body(notification([alert(lag())])))
    before = len(cluster.emu.requests)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator",
        "explain",
        str(payload),
        "--config",
        str(config),
        "--online",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    assert (
        "  gitops:   Argo CD application shop-apps (annotation argocd.argoproj.io/tracking-id); "
        "policies: scale act, rollback escalate, restart act"
    ) in out.decode()
    read = [(r.method, r.path) for r in cluster.emu.requests[before:]]
    assert read == [("GET", "/apis/apps/v1/namespaces/shop/deployments/consumer")]


async def test_a_restore_a_kill_switch_refuses_is_escalated_once_and_tried_again(
    cluster: Cluster,
) -> None:
    app = await managed(cluster, SCALE, "flux")
    daemon = await cluster.start("scale_on_lag", params=LAG, extra=suspend_config())
    episode = await suspended_change(cluster, SCALE, app)
    engine = daemon.engine
    pause = await engine.governance.pause("global", who="oncall", reason="freeze")

    await cluster.resolve(lag())
    assert await cluster.run_timers() == 1

    assert switches(cluster, SCALE)[RECONCILE] == "disabled"  # still suspended
    outcome = await cluster.outcome(episode)
    [escalation] = outcome.escalations
    assert escalation.reason.startswith(
        "could not restore Flux Kustomization flux-system/apps's reconciliation of "
        "Deployment/shop/consumer (ActionRefused: kill_switch: "
    )
    assert escalation.reason.endswith(
        "it is tried again every 300 s, or run: kubectl -n shop annotate deployment/consumer "
        "kustomize.toolkit.fluxcd.io/reconcile- remediator/suspended-by-"
    )
    [retry] = [
        t
        for t in await cluster.timers(episode, "gitops_resume")
        if t.state == "waiting" and t.payload.get("attempts") == 1
    ]

    # Once the pause is lifted, the retry restores it (run here rather than 300 s later).
    await engine.governance.resume(pause.id, who="oncall", reason="thawed")
    assert engine.pipeline.action_hooks is not None
    await engine.pipeline.action_hooks.on_resume(retry)  # type: ignore[attr-defined]

    await restored(cluster, episode, SCALE, app, "after the alert resolved")
    assert len((await cluster.outcome(episode)).escalations) == 1
