"""PodCrashLooping: roll back a bad rollout, else evict the pod once; never twice.

The runbooks: 000 "Pods Stuck in CrashLoopBackOff" (look at the logs, fix the cause; roll back
a bad deploy), 002 PodCrashLooping ("check pod logs"). Deleting a crash-looping pod helps only
with transient or node-local faults: the kubelet backs off 10 s doubling to 5 minutes and
resets after 10 minutes of running, so a pod that crashes again right after its replacement
needs a fix, not a restart.

The target is the Deployment owning the pod, so locks, rate limits and the guards' one pod per
workload per episode count per workload: named by the alert's `deployment` label, or derived
from the pod's name, then confirmed through the API (pod -> ReplicaSet -> Deployment, by
controller references). Refused, with the reason recorded, when a label is missing or invalid,
the pod does not exist, or it is not owned by that Deployment.

What the playbook does:

  1. if the pod is Ready now, nothing;
  2. if the Deployment's running code was rolled out within `rollout_window_seconds` and the
     crash-looping pod belongs to that rollout's ReplicaSet, roll back like
     `kubectl rollout undo` (the newest earlier revision running different code) and watch the
     rollout for `rollout_deadline_seconds`;
  3. otherwise evict the pod through the Eviction API, so a PodDisruptionBudget is respected
     (a budget's refusal fails the run with the API's message, escalated);
  4. `follow_up_seconds` later, if the alert still fires and no verification proved the fix,
     a crash loop in the Deployment is escalated, not restarted again.

Each pod's crash loop is its own alert (the `pod` label), hence its own episode: across pods,
`guards.rate_limits` (keyed on the Deployment) bounds how often the playbook acts.

Recorded: the pod (containers crash-looping, restarts, ReplicaSet), the revisions, the exact
eviction or patch. Shadow mode records it and changes nothing. Verification: after 5 minutes
the alert's own expression must no longer fire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import ActionRefused, Run, Target, Verify, playbook, targets
from remediator.playbook import workloads as w
from remediator.playbook.access import uses
from remediator.playbook.kube import Kube


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rollout_window_seconds: float = Field(
        1800.0,
        gt=0,
        description="A rollout this recent, whose pods crash-loop, is rolled back instead of "
        "evicting the pod.",
    )
    rollout_deadline_seconds: float = Field(
        120.0, gt=0, description="How long a rollback gets to roll out completely."
    )
    follow_up_seconds: float = Field(
        600.0,
        gt=0,
        description="When the alert still fires this long after the eviction or rollback, a "
        "crash loop in the Deployment is escalated (the kubelet's backoff resets after 10 min).",
    )


def crashing(pod: w.JsonObj) -> bool:
    return bool(w.crash_looping(pod)) or (not w.is_ready(pod) and w.restarts(pod) > 0)


def describe(pod: w.JsonObj) -> dict[str, Any]:
    return {
        "name": w.meta(pod).get("name"),
        "replicaset": (w.controller(pod) or {}).get("name"),
        "ready": w.is_ready(pod),
        "crash_looping": w.crash_looping(pod),
        "restarts": w.restarts(pod),
    }


class Restarted(BaseModel):
    """What the run did, for its follow-up."""

    step: Literal["rollback", "eviction"]
    pod: str


async def still_crash_looping(
    *, target: Target, params: Params, kube: Kube, run: Run, data: Restarted, **_: Any
) -> None:
    """The follow-up: the alert still fires; a crash loop now goes to humans."""
    pods = [p for p in await kube.pods(await kube.workload(target)) if crashing(p)]
    run.evidence("crash_looping_pods", [describe(p) for p in pods])
    if pods:
        run.escalate(
            f"{target.key} still crash-loops ({', '.join(str(w.meta(p)['name']) for p in pods)}) "
            f"{params.follow_up_seconds:g} s after the {data.step} of pod {data.pod}; "
            "not restarting again: a pod that keeps crashing needs a fix"
        )


@playbook(
    match='alertname="PodCrashLooping"',
    target=targets.deployment_of_pod(),
    params=Params,
    priority=10,
    verify=Verify(bake=timedelta(minutes=5)),
    follow_up=still_crash_looping,
    access=uses(
        Kube.deployment_of_pod,
        Kube.workload,
        Kube.history,
        Kube.rollback,
        Kube.wait_rollout,
        Kube.evict,
        Kube.pods,
    ),
)
async def restart_crashloop(
    *, target: Target, params: Params, kube: Kube, run: Run, **_: Any
) -> None:
    """Roll back a crash-looping recent rollout, else evict the crash-looping pod once."""
    namespace, pod_name = str(target.namespace), target.extra["pod"]
    pod, owner = await kube.deployment_of_pod(namespace, pod_name)
    if owner != target.name:
        raise ActionRefused(
            "target", f"Pod/{namespace}/{pod_name} belongs to Deployment {owner}, not {target.key}"
        )
    run.evidence("pod", describe(pod))
    if w.is_ready(pod):
        run.evidence("decision", "the pod is Ready now; nothing to do")
        return
    deployment = await kube.workload(target)
    history = await kube.history(deployment)
    run.evidence("revisions", history.describe())
    deployed = history.deployed_at
    recent = deployed is not None and datetime.now(UTC) - deployed <= timedelta(
        seconds=params.rollout_window_seconds
    )
    current = w.meta(history.current).get("uid") if history.current else None
    in_rollout = (w.controller(pod) or {}).get("uid") == current
    step: Literal["rollback", "eviction"]
    if recent and in_rollout and history.previous is not None:
        step = "rollback"
        await kube.rollback(target)
        if not run.dry_run:
            rollout = await kube.wait_rollout(target, params.rollout_deadline_seconds)
            run.evidence("rollback", rollout.describe())
            if not rollout.done:
                run.escalate(f"the rollback of {target.key} did not roll out: {rollout.reason}")
                return
    else:
        step = "eviction"
        await kube.evict(target, pod)
    if not run.dry_run:
        await run.follow_up(params.follow_up_seconds, Restarted(step=step, pod=pod_name))
