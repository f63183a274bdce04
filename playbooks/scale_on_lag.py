"""KafkaLagHigh and HighLatency/HighResponseTime: scale the Deployment up by a bounded step.

The runbooks:

  * 003 "High Consumer Lag" / "Kafka Topic Lag": `kubectl scale deployment <consumer>
    --replicas=5`; "if lag continues to grow after scaling, escalate immediately";
  * 000 "Slow Data Ingestion": scale horizontally;
  * 002 "High Response Time": increase replicas (its HPA runs 3-20 replicas).

What the playbooks do, for the Deployment named by the alert's `namespace` and `deployment`
labels (refused when a label is missing or invalid, or the Deployment does not exist):

  1. read its replicas and what owns them: a KEDA ScaledObject or an HPA whose
     `scaleTargetRef` names it, or nobody;
  2. add `step` replicas, capped by `max_replicas` (and the blast-radius guard's own cap) and,
     for Kafka consumers, by the topic's partition count (consumers beyond it sit idle while
     every scale rebalances the group); through the owner, never against it:
       - nobody: patch the Deployment's scale subresource;
       - an HPA: raise its `minReplicas` (the HPA scales up to it; never above its
         `maxReplicas`);
       - KEDA: set the ScaledObject's `autoscaling.keda.sh/paused-replicas` (KEDA holds the
         workload at that count);
  3. never scale down while the alert fires: already at (or above) the cap means no change and
     an escalation, because the runbook's remedy is used up;
  4. after the alert resolves and `cooldown_seconds` passed (`run.on_resolved`, a durable
     timer), return to what it found before the incident: the replicas, the HPA's floor, the
     ScaledObject's annotation; unless someone changed it since, which is then left alone and
     escalated (when it is back at what was found already, e.g. a GitOps controller put
     Git's value back, there is nothing to do). While the alert fires again for the same
     Deployment (a new episode), the engine holds the scale-back and asks again after another
     cool-down; when that episode
     scaled up too, the two are one incident with one scale-back, to the count found before
     the first (never to the count in between).

The partition count (scale-on-lag only) is the smallest of: the alert's `partitions` label,
its `partitions` annotation (the shipped KafkaLagHigh rule fills it in from
`kafka_topic_partitions`), and the `partitions` parameter. With none of them, and Prometheus
configured (`prometheus.url`), it is read from kafka_exporter's
`kafka_topic_partitions{topic="<the alert's topic>"}`. Still unknown, the playbook does not
scale and escalates: guessing could leave consumers idle and rebalance the group for nothing.
A label can only lower the cap.

Verification: scale-on-lag checks after 5 minutes that the group's lag stopped growing
(runbook 003: growing lag after scaling is escalated) and, while KafkaLagHigh still fires,
that the lag is falling: lag flat above the threshold is not a fix, and is escalated.
scale-on-latency checks that the alert's own expression no longer fires. The bake time is
`playbooks.<name>.verify.bake_seconds` (default 300). Recorded: the replicas before, the
owner, the cap and why, the exact patch; shadow mode records the patch and changes nothing.

Parameters (`playbooks.scale-on-lag.params`, `playbooks.scale-on-latency.params`): see
`LagParams` and `LatencyParams` below.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import Alert, Run, Target, Verify, playbook, targets
from remediator.playbook import workloads as w
from remediator.playbook.access import uses
from remediator.playbook.kube import Autoscaler, Kube
from remediator.playbook.prometheus import Prometheus, PrometheusError, escape_label_value

# What scale_up and scale_back call, whoever owns the replicas.
SCALING = uses(
    Kube.workload,
    Kube.autoscaler,
    Kube.scale,
    Kube.set_hpa_min_replicas,
    Kube.set_keda_paused_replicas,
)


class ScaledUp(BaseModel):
    """What a scale-up changed, for its scale-back: through what (`how`, `object`), the value
    it found there before (`found`; KEDA: no paused-replicas annotation is None) and the value
    it set (`set`)."""

    how: Literal["deployment", "hpa", "keda"]
    object: str | None = None
    # Replicas or the HPA's floor; KEDA: the paused-replicas annotation as found (None: absent).
    found: int | str | None
    set: int
    replicas_found: int


class LatencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(2, ge=1, le=20, description="Replicas added, once per alert episode.")
    max_replicas: int = Field(
        20,
        ge=1,
        description="Never scale beyond this (runbook 002's HPA allows 20); the blast-radius "
        "guard's `max_replicas` applies as well.",
    )
    cooldown_seconds: float = Field(
        300.0,
        ge=0,
        description="After the alert resolved, wait this long before returning to the "
        "replicas found (the HPA's default scale-down window is 300 s too).",
    )
    scale_back: bool = Field(
        True, description="Return to what was found after the alert resolved and the cool-down."
    )


class LagParams(LatencyParams):
    max_replicas: int = Field(
        10, ge=1, description="Never scale beyond this; the partition count caps it further."
    )
    partitions: int | None = Field(
        None,
        ge=1,
        description="Partition count of the consumed topic when the alert carries none (a "
        "`partitions` label or annotation); the smallest known value caps the consumers. "
        "Unknown: no scaling, escalated.",
    )


def partition_cap(alert: Alert, params: LagParams) -> int | None:
    """The smallest partition count the alert or the parameters state (a label can only lower
    the cap, never raise it)."""
    known = [params.partitions] if params.partitions else []
    for source in (alert.labels, alert.annotations):
        value = source.get("partitions", "")
        if value.isdigit() and int(value) > 0:
            known.append(int(value))
    return min(known) if known else None


# kafka_exporter's partition count of a topic; the smallest, should two clusters share the name.
PARTITIONS_QUERY = 'min(kafka_topic_partitions{{topic="{topic}"}})'


async def partitions_from_prometheus(
    alert: Alert, prometheus: Prometheus | None, run: Run
) -> tuple[int | None, str]:
    """The topic's partition count as Prometheus knows it, or None and why not."""
    topic = alert.labels.get("topic")
    if not topic:
        return None, "the alert has no `topic` label to look it up by"
    if prometheus is None:
        return None, "no Prometheus is configured (prometheus.url) to look it up"
    query = PARTITIONS_QUERY.format(topic=escape_label_value(topic))
    try:
        samples = await prometheus.query(query)
    except PrometheusError as exc:
        return None, f"Prometheus could not tell: {exc}"
    counts = [s.value for s in samples if math.isfinite(s.value) and s.value >= 1]
    if not counts:
        return None, f"Prometheus has no kafka_topic_partitions for topic {topic!r}"
    run.evidence("partitions", {"count": int(counts[0]), "from": f"Prometheus: {query}"})
    return int(counts[0]), ""


async def scale_up(
    *,
    target: Target,
    kube: Kube,
    run: Run,
    step: int,
    cap: int,
    why: str,
    cooldown: float | None,
) -> None:
    """Add `step` replicas up to `cap`, through whatever owns the replica count."""
    deployment = await kube.workload(target)
    replicas = int(w.spec(deployment).get("replicas", 1))
    owner = await kube.autoscaler(target)
    run.evidence("replicas_before", replicas)
    run.evidence("owner", f"{owner.kind} {owner.name}" if owner else "the Deployment")
    low, high = owner.hpa_bounds if owner is not None and owner.kind == "hpa" else (0, cap)
    if high < cap:
        cap, why = high, f"the HPA's maxReplicas {high}"
    run.evidence("cap", {"replicas": cap, "why": why})
    # An owner may already hold the workload higher than it runs now (an HPA floor, KEDA's
    # paused count not reached yet): scale from there, so the owner's value never goes down.
    held = low if owner is not None and owner.kind == "hpa" else _paused(owner)
    base = max(replicas, held)
    wanted = min(base + step, cap)
    if wanted <= base:
        run.escalate(
            f"{target.key} already runs (or is held at) {base} replica(s), at or above the cap "
            f"of {cap} ({why}); scaling further is for humans"
        )
        return
    if owner is None:
        data = ScaledUp(how="deployment", found=replicas, set=wanted, replicas_found=replicas)
    elif owner.kind == "hpa":
        data = ScaledUp(
            how="hpa", object=owner.name, found=low, set=wanted, replicas_found=replicas
        )
    else:
        data = ScaledUp(
            how="keda",
            object=owner.name,
            found=owner.paused_replicas,
            set=wanted,
            replicas_found=replicas,
        )
    if cooldown is not None:
        run.evidence(
            "scale_back",
            {
                "after_resolved_seconds": cooldown,
                **data.model_dump(mode="json", exclude_defaults=True),
            },
        )
        # Declared before the change, so it is durable with the intent: if the daemon dies
        # during the call and the change is found applied, the scale-back is still armed.
        if not run.dry_run:  # shadow mode changes nothing, so there is nothing to undo
            await run.on_resolved(cooldown, data)
    if owner is None:
        await kube.scale(target, wanted, before=replicas)
    elif owner.kind == "hpa":
        await kube.set_hpa_min_replicas(
            target, owner.name, wanted, before=low, replicas=(replicas, wanted)
        )
    else:
        await kube.set_keda_paused_replicas(
            target, owner.name, wanted, before=owner.paused_replicas, replicas=(replicas, wanted)
        )
    run.evidence("replicas_after", wanted)


def _paused(owner: Autoscaler | None) -> int:
    value = owner.paused_replicas if owner is not None and owner.kind == "keda" else None
    return int(value) if value is not None and value.isdigit() else 0


async def scale_back(
    *,
    target: Target,
    kube: Kube,
    run: Run,
    data: ScaledUp,
    baseline: ScaledUp | None = None,
    **_: Any,
) -> None:
    """After the alert resolved and the cool-down: return to what the incident's first
    scale-up found (`baseline`; several episodes of one incident share one scale-back), if the
    count is still what the last scale-up set; otherwise leave it and call humans."""
    first = baseline or data
    how, wanted = data.how, data.set
    if (first.how, first.object) != (how, data.object):
        _left_alone(
            run,
            target,
            f"it was scaled through {_through(first)} first and through {_through(data)} "
            "later, so there is no one value to return to",
        )
        return
    found = first.found
    deployment = await kube.workload(target)
    replicas = int(w.spec(deployment).get("replicas", 1))
    if how == "deployment":
        if found is not None and replicas == int(found) != wanted:
            _back_already(run, f"replicas are {replicas}")
            return
        if replicas != wanted:
            _left_alone(run, target, f"replicas are {replicas}, not the {wanted} it set")
            return
        await kube.scale(target, replicas if found is None else int(found), before=replicas)
        return
    owner = await kube.autoscaler(target)
    if owner is None or owner.name != data.object:
        _left_alone(run, target, f"the {how} {data.object} no longer scales {target.key}")
        return
    if how == "hpa":
        await _hpa_back(target, kube, run, owner, wanted, found, replicas)
    else:
        await _keda_back(target, kube, run, owner, wanted, found, replicas)


async def _hpa_back(
    target: Target,
    kube: Kube,
    run: Run,
    owner: Autoscaler,
    wanted: int,
    found: int | str | None,
    replicas: int,
) -> None:
    low, _ = owner.hpa_bounds
    if found is not None and low == int(found) != wanted:
        _back_already(run, f"minReplicas is {low}")
        return
    if low != wanted:
        _left_alone(run, target, f"minReplicas is {low}, not the {wanted} it set")
        return
    # Lowering the floor lets the HPA scale down at its own pace; the count does not jump.
    await kube.set_hpa_min_replicas(
        target,
        owner.name,
        low if found is None else int(found),
        before=low,
        replicas=(replicas, replicas),
    )


async def _keda_back(
    target: Target,
    kube: Kube,
    run: Run,
    owner: Autoscaler,
    wanted: int,
    found: int | str | None,
    replicas: int,
) -> None:
    if owner.paused_replicas == (None if found is None else str(found)) != str(wanted):
        _back_already(run, f"paused-replicas is {owner.paused_replicas!r}")
        return
    if owner.paused_replicas != str(wanted):
        _left_alone(run, target, f"paused-replicas is {owner.paused_replicas!r}, not {wanted}")
        return
    back = None if found is None else int(found)
    await kube.set_keda_paused_replicas(
        target,
        owner.name,
        back,
        before=owner.paused_replicas,
        replicas=(replicas, replicas if back is None else back),
    )


def _through(data: ScaledUp) -> str:
    return "the Deployment" if data.how == "deployment" else f"{data.how} {data.object}"


def _back_already(run: Run, now: str) -> None:
    """Back at the count found before the incident already (a GitOps controller put Git's
    value back, or a human did): nothing to undo, and nobody to call for it."""
    run.evidence("scale_back", f"nothing to do: {now}, as found before the incident")


def _left_alone(run: Run, target: Target, why: str) -> None:
    """Someone (or something) changed the count since: scaling back now could undo their
    decision, so the state before the incident is not restored and humans are told."""
    run.evidence("left_alone", why)
    run.escalate(f"{target.key} was not scaled back: {why}")


LAG_CHANGE = (
    "sum by (consumergroup, topic) (delta(kafka_consumergroup_lag{"
    'consumergroup="{{ $labels.consumergroup }}", topic="{{ $labels.topic }}"}[5m]))'
)
LAG_GROWING = LAG_CHANGE + " > 0"
LAG_FALLING = LAG_CHANGE + " < 0"


@playbook(
    match='alertname="KafkaLagHigh"',
    target=targets.deployment(),
    params=LagParams,
    priority=10,
    verify=Verify(bake=timedelta(minutes=5), promql=LAG_GROWING, progress=LAG_FALLING),
    revert=scale_back,
    access=SCALING,
)
async def scale_on_lag(
    *,
    alert: Alert,
    target: Target,
    params: LagParams,
    kube: Kube,
    run: Run,
    prometheus: Prometheus | None = None,
    **_: Any,
) -> None:
    """Scale a lagging Kafka consumer Deployment up, never beyond the topic's partitions."""
    partitions = partition_cap(alert, params)
    if partitions is not None:
        run.evidence("partitions", {"count": partitions, "from": "the alert or the parameters"})
    else:
        partitions, unknown = await partitions_from_prometheus(alert, prometheus, run)
        if partitions is None:
            run.escalate(
                f"the partition count of topic {alert.labels.get('topic', '?')!r} is unknown "
                f"(no `partitions` label, annotation or parameter; {unknown}), so consumers "
                "were not scaled"
            )
            return
    cap, why = params.max_replicas, "max_replicas"
    if partitions < cap:
        cap, why = partitions, f"{partitions} partitions"
    await scale_up(
        target=target,
        kube=kube,
        run=run,
        step=params.step,
        cap=cap,
        why=why,
        cooldown=params.cooldown_seconds if params.scale_back else None,
    )


@playbook(
    match='alertname=~"HighLatency|HighResponseTime"',
    target=targets.deployment(),
    params=LatencyParams,
    priority=10,
    verify=Verify(bake=timedelta(minutes=5)),
    revert=scale_back,
    access=SCALING,
)
async def scale_on_latency(
    *, target: Target, params: LatencyParams, kube: Kube, run: Run, **_: Any
) -> None:
    """Scale a slow Deployment up by a bounded step, through its HPA or KEDA if they own it."""
    await scale_up(
        target=target,
        kube=kube,
        run=run,
        step=params.step,
        cap=params.max_replicas,
        why="max_replicas",
        cooldown=params.cooldown_seconds if params.scale_back else None,
    )
