"""HorizontalPodAutoscaler bounds, PodDisruptionBudget accounting and evictions.

There are no metrics here, so the HPA controller only does what a real HPA
does regardless of load: keep its target within [minReplicas, maxReplicas].
PDB status is recomputed from live pods, and eviction decisions use a fresh
computation (not the last published status) so that two evictions in quick
succession cannot both spend the same disruption.
"""

from __future__ import annotations

import math
from typing import Any

from remediator_testing.kube import errors, selectors
from remediator_testing.kube.pods import is_ready
from remediator_testing.kube.resources import (
    DEPLOYMENTS,
    HPAS,
    PDBS,
    PODS,
    REPLICASETS,
    SCALEDOBJECTS,
    STATEFULSETS,
    ResourceType,
)
from remediator_testing.kube.store import Store, now_iso
from remediator_testing.kube.templates import controller_ref

JsonObj = dict[str, Any]

_SCALABLE: dict[str, ResourceType] = {
    "Deployment": DEPLOYMENTS,
    "StatefulSet": STATEFULSETS,
    "ReplicaSet": REPLICASETS,
}


class HpaController:
    def sync(self, store: Store) -> None:
        for hpa in store.list(HPAS):
            namespace, spec = hpa["metadata"]["namespace"], hpa["spec"]
            ref = spec.get("scaleTargetRef") or {}
            rt = _SCALABLE.get(ref.get("kind", ""))
            target = store.get(rt, namespace, ref.get("name", "")) if rt else None
            if rt is None or target is None:
                continue
            current = int(target["spec"].get("replicas", 1))
            low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
            # A target scaled to zero disables autoscaling, as in the real HPA.
            desired = min(max(current, low), high) if current else 0
            status: JsonObj = dict(hpa.get("status") or {})
            if desired != current:
                target["spec"]["replicas"] = desired
                store.update(rt, target)
                status["lastScaleTime"] = now_iso()
            status.update(
                observedGeneration=hpa["metadata"]["generation"],
                currentReplicas=int((target.get("status") or {}).get("replicas", 0)),
                desiredReplicas=desired,
            )
            if status != hpa.get("status"):
                hpa["status"] = status
                store.update(HPAS, hpa, status_only=True)


KEDA_PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"


class KedaController:
    """The one KEDA behaviour remediation relies on: a ScaledObject annotated with
    `autoscaling.keda.sh/paused-replicas: N` holds its target at N replicas. (Without metrics
    there is no autoscaling to pause otherwise.)"""

    def sync(self, store: Store) -> None:
        for scaled in store.list(SCALEDOBJECTS):
            value = (scaled["metadata"].get("annotations") or {}).get(KEDA_PAUSED_REPLICAS)
            ref = scaled.get("spec", {}).get("scaleTargetRef") or {}
            rt = _SCALABLE.get(ref.get("kind", "Deployment"))
            namespace = scaled["metadata"]["namespace"]
            target = store.get(rt, namespace, ref.get("name", "")) if rt else None
            if rt is None or target is None or value is None or not str(value).isdigit():
                continue
            if int(target["spec"].get("replicas", 1)) != int(value):
                target["spec"]["replicas"] = int(value)
                store.update(rt, target)


def _scale_owner(store: Store, pod: JsonObj) -> JsonObj | None:
    """The controller whose scale governs a pod: Deployment over ReplicaSet, as the real PDB."""
    ref = controller_ref(pod)
    rt = _SCALABLE.get(ref["kind"]) if ref else None
    if ref is None or rt is None:
        return None
    namespace = pod["metadata"]["namespace"]
    owner = store.get(rt, namespace, ref["name"])
    parent = controller_ref(owner) if owner and rt == REPLICASETS else None
    if parent is not None and parent["kind"] == "Deployment":
        return store.get(DEPLOYMENTS, namespace, parent["name"]) or owner
    return owner


def _expected_pods(store: Store, pods: list[JsonObj]) -> int:
    """Pods the budget should see: the scale of each owning controller, else 1 per pod."""
    expected, seen = 0, set()
    for pod in pods:
        owner = _scale_owner(store, pod)
        if owner is None:
            expected += 1
        elif owner["metadata"]["uid"] not in seen:
            seen.add(owner["metadata"]["uid"])
            expected += int(owner["spec"].get("replicas", 1))
    return expected


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def budget_status(store: Store, pdb: JsonObj) -> JsonObj:
    namespace, spec = pdb["metadata"]["namespace"], pdb["spec"]
    selector = selectors.from_label_selector(spec.get("selector"))
    pods = [
        p
        for p in store.list(PODS, namespace)
        if selectors.matches(selector, selectors.labels_of(p))
    ]
    expected = _expected_pods(store, pods)
    healthy = sum(1 for p in pods if is_ready(p))
    if "maxUnavailable" in spec:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    else:
        desired = _scaled(spec.get("minAvailable", 1), expected)
    allowed = max(0, healthy - desired)
    conditions = (pdb.get("status") or {}).get("conditions") or []
    old = next((c for c in conditions if c.get("type") == "DisruptionAllowed"), None)
    state = "True" if allowed else "False"
    condition = {
        "type": "DisruptionAllowed",
        "status": state,
        "reason": "SufficientPods" if allowed else "InsufficientPods",
        "message": "",
        "observedGeneration": pdb["metadata"]["generation"],
        "lastTransitionTime": old["lastTransitionTime"]
        if old and old["status"] == state
        else now_iso(),
    }
    return {
        "observedGeneration": pdb["metadata"]["generation"],
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "disruptionsAllowed": allowed,
        "expectedPods": expected,
        "conditions": [condition],
    }


class PdbController:
    def sync(self, store: Store) -> None:
        for pdb in store.list(PDBS):
            status = budget_status(store, pdb)
            if status != pdb.get("status"):
                pdb["status"] = status
                store.update(PDBS, pdb, status_only=True)


def evict(
    store: Store,
    namespace: str,
    name: str,
    *,
    dry_run: bool = False,
    preconditions: JsonObj | None = None,
) -> None:
    """Delete a pod if no PodDisruptionBudget forbids it, else raise 429 like the apiserver.
    `preconditions` (the Eviction's deleteOptions) pin the pod's uid or resourceVersion."""
    pod = store.require(PODS, namespace, name)
    pre = preconditions or {}
    meta = pod["metadata"]
    if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
        pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
    ):
        raise errors.conflict(PODS, name)
    labels = selectors.labels_of(pod)
    budgets = [
        pdb
        for pdb in store.list(PDBS, namespace)
        if selectors.matches(selectors.from_label_selector(pdb["spec"].get("selector")), labels)
    ]
    if len(budgets) > 1:
        raise errors.ApiError(
            500,
            "This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.",
        )
    phase = (pod.get("status") or {}).get("phase")
    if budgets and phase not in ("Succeeded", "Failed", "Pending"):
        pdb = budgets[0]
        status = budget_status(store, pdb)
        policy = pdb["spec"].get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
        unhealthy_ok = not is_ready(pod) and (
            policy == "AlwaysAllow" or status["currentHealthy"] >= status["desiredHealthy"]
        )
        if not unhealthy_ok and status["disruptionsAllowed"] <= 0:
            raise errors.ApiError(
                429,
                "Cannot evict pod as it would violate the pod's disruption budget.",
                details={
                    "causes": [
                        {
                            "reason": "DisruptionBudget",
                            "message": f"The disruption budget {pdb['metadata']['name']} needs "
                            f"{status['desiredHealthy']} healthy pods and has "
                            f"{status['currentHealthy']} currently",
                        }
                    ]
                },
            )
    store.delete(PODS, namespace, name, dry_run=dry_run)
