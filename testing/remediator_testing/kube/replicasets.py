"""The ReplicaSet controller: keep `spec.replicas` pods alive per ReplicaSet.

Deleted or evicted pods come back from here, and scaling down removes the
least valuable pods first (not ready before ready, crash-looping before
healthy, newest before oldest), which is the order the real controller uses
and what keeps a stalled rollout from killing the old, healthy pods.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from remediator_testing.kube.pods import is_ready
from remediator_testing.kube.resources import PODS, REPLICASETS
from remediator_testing.kube.store import Store
from remediator_testing.kube.templates import controller_uid, pod_from_template, random_suffix

JsonObj = dict[str, Any]


def pods_by_controller(store: Store, namespace: str | None = None) -> dict[str, list[JsonObj]]:
    owned: dict[str, list[JsonObj]] = defaultdict(list)
    for pod in store.list(PODS, namespace):
        uid = controller_uid(pod)
        if uid is not None:
            owned[uid].append(pod)
    return owned


def deletion_order(pods: list[JsonObj]) -> list[JsonObj]:
    """Pods in removal order: not ready, then pending, then most restarts, newest first."""

    def value(pod: JsonObj) -> tuple[bool, bool, int]:
        status = pod.get("status") or {}
        restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
        return (is_ready(pod), status.get("phase") == "Running", -restarts)

    newest_first = sorted(
        pods,
        key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
        reverse=True,
    )
    return sorted(newest_first, key=value)


def replica_status(pods: list[JsonObj], generation: int) -> JsonObj:
    ready = sum(1 for pod in pods if is_ready(pod))
    status: JsonObj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": len(pods),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": generation,
    }
    # Go omits zero counters (omitempty); keep the wire shape identical.
    return {k: v for k, v in status.items() if v or k == "replicas"}


class ReplicaSetController:
    def sync(self, store: Store) -> None:
        owned = pods_by_controller(store)
        for rs in store.list(REPLICASETS):
            pods = owned.get(rs["metadata"]["uid"], [])
            wanted = int(rs["spec"].get("replicas", 1))
            if len(pods) < wanted:
                for _ in range(wanted - len(pods)):
                    pods.append(self._create_pod(store, rs))
            elif len(pods) > wanted:
                doomed = deletion_order(pods)[: len(pods) - wanted]
                for pod in doomed:
                    store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                names = {p["metadata"]["name"] for p in doomed}
                pods = [p for p in pods if p["metadata"]["name"] not in names]
            status = replica_status(pods, rs["metadata"].get("generation", 1))
            if status != rs.get("status"):
                rs["status"] = status
                store.update(REPLICASETS, rs, status_only=True)

    @staticmethod
    def _create_pod(store: Store, rs: JsonObj) -> JsonObj:
        namespace, base = rs["metadata"]["namespace"], rs["metadata"]["name"]
        while True:
            name = f"{base}-{random_suffix()}"
            if store.get(PODS, namespace, name) is None:
                break
        return store.create(PODS, pod_from_template(rs, rs["spec"]["template"], name, {}))
