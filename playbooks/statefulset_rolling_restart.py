"""RedisCacheDown, KafkaBrokerDown: restart the StatefulSet's pods one at a time.

The runbooks: 002 "Redis Connection Errors" (`kubectl rollout restart statefulset redis`) and
003 "Kafka Cluster Failure" ("restart one broker at a time": `kubectl delete pod kafka-0`, then
`kubectl wait --for=condition=ready pod/kafka-0 --timeout=300s`, then the next).

The playbook drives the pods itself rather than stamping the template: with the default
OrderedReady policy the StatefulSet controller does not replace any pod while one is unready,
which is exactly the state these alerts fire in. For the StatefulSet named by the alert's
`namespace` and `statefulset` labels (refused when a label is missing or invalid, or it does
not exist):

  1. order its pods: the unready ones first (the broken broker or cache; restarting a healthy
     member while another is down would lose capacity or quorum), then the rest from the
     highest ordinal down (the controller's own update order; ordinal 0 is often the primary);
     with `only_unready` the Ready pods are left alone;
  2. for each pod: evict it through the Eviction API (PodDisruptionBudgets apply; pinned to
     the pod's uid, so a retried request never hits the replacement that has the same name),
     then wait up to `pod_ready_deadline_seconds` for its replacement to be Ready;
  3. a replacement that is not Ready in time stops the restart there and escalates: the
     next pod is never touched while the previous one is down.

The playbook declares the budget its procedure needs: one pod per replica of the StatefulSet
per episode (`budget=Budget(pods=PER_REPLICA)`; each eviction says the replicas it read), under
the ceiling `guards.blast_radius.max_pods_per_episode` (default 10), so a full rolling restart
works out of the box. Past the ceiling, the playbook restarts as many pods as allowed (the
broken ones first) and escalates the rest with the guard's reason. The waits happen inside
the run: `dispatch.playbook_timeout_seconds` must cover replicas times
`pod_ready_deadline_seconds`.

Recorded: the order, each eviction with its exact body, each replacement's readiness. Shadow
mode records every eviction it would make and waits for nothing. Verification: after 3 minutes
the alert's own expression must no longer fire.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import (
    PER_REPLICA,
    ActionRefused,
    Budget,
    Run,
    Target,
    Verify,
    playbook,
    targets,
)
from remediator.playbook import workloads as w
from remediator.playbook.access import uses
from remediator.playbook.kube import Kube


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pod_ready_deadline_seconds: float = Field(
        120.0,
        gt=0,
        description="How long each replacement pod gets to become Ready before the restart "
        "stops and escalates (runbook 003 waits 300 s).",
    )
    only_unready: bool = Field(
        False, description="Restart only the pods that are not Ready; leave healthy ones alone."
    )


def ordinal(pod: w.JsonObj) -> int:
    suffix = str(w.meta(pod).get("name", "")).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def restart_order(pods: list[w.JsonObj], only_unready: bool) -> list[w.JsonObj]:
    chosen = [p for p in pods if not (only_unready and w.is_ready(p))]
    return sorted(chosen, key=lambda p: (w.is_ready(p), -ordinal(p)))


@playbook(
    match='alertname=~"RedisCacheDown|KafkaBrokerDown"',
    target=targets.statefulset(),
    params=Params,
    priority=10,
    verify=Verify(bake=timedelta(minutes=3)),
    access=uses(Kube.workload, Kube.pods, Kube.evict, Kube.wait_pod_ready, on="StatefulSet"),
    budget=Budget(pods=PER_REPLICA),
)
async def statefulset_rolling_restart(
    *, target: Target, params: Params, kube: Kube, run: Run, **_: Any
) -> None:
    """Restart a StatefulSet's pods one at a time, each only after the previous is Ready."""
    namespace = str(target.namespace)
    workload = await kube.workload(target)
    replicas = int(w.spec(workload).get("replicas", 1))
    order = restart_order(await kube.pods(workload), params.only_unready)
    names = [str(w.meta(p)["name"]) for p in order]
    run.evidence("order", names)
    if not order:
        run.escalate(f"{target.key} has no pod to restart")
        return
    restarted: list[str] = []
    for index, (pod, name) in enumerate(zip(order, names, strict=True)):
        # Kept with each eviction's intent: a restart of the daemon mid-way reports these as
        # not restarted (engine/runs/recovery.py).
        run.evidence("remaining", names[index + 1 :])
        try:
            await kube.evict(target, pod, replicas=replicas)
        except ActionRefused as refused:
            if not restarted:
                raise
            run.escalate(f"restarted {', '.join(restarted)}; {name} and after were not: {refused}")
            break
        if run.dry_run:
            restarted.append(name)
            continue
        replacement = await kube.wait_pod_ready(
            namespace,
            name,
            replaces=str(w.meta(pod)["uid"]),
            deadline_seconds=params.pod_ready_deadline_seconds,
        )
        if replacement is None:
            run.escalate(
                f"pod {namespace}/{name} was not Ready {params.pod_ready_deadline_seconds:g} s "
                f"after its restart; stopped there (restarted before it: {restarted or 'none'}, "
                f"not touched: {names[len(restarted) + 1 :] or 'none'})"
            )
            break
        restarted.append(name)
    run.evidence("would_restart" if run.dry_run else "restarted", restarted)
