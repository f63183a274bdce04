"""The StatefulSet controller: ordinal pods, ordered start-up, rolling updates.

Remediation of stateful workloads depends on the real ordering guarantees: with
the default OrderedReady policy pods start one at a time in ordinal order, and
a RollingUpdate replaces pods from the highest ordinal down, one at a time,
only while every pod is Ready. Template revisions are kept as
ControllerRevisions, which is also what `status.currentRevision` and
`status.updateRevision` name.
"""

from __future__ import annotations

from typing import Any

from remediator_testing.kube.pods import is_ready
from remediator_testing.kube.replicasets import pods_by_controller
from remediator_testing.kube.resources import CONTROLLERREVISIONS, PODS, STATEFULSETS
from remediator_testing.kube.store import Store
from remediator_testing.kube.templates import (
    controller_uid,
    owner_reference,
    pod_from_template,
    template_hash,
)

JsonObj = dict[str, Any]

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _ordinal(set_name: str, pod: JsonObj) -> int | None:
    suffix = pod["metadata"]["name"][len(set_name) + 1 :]
    return int(suffix) if suffix.isdigit() else None


class StatefulSetController:
    def sync(self, store: Store) -> None:
        for sts in store.list(STATEFULSETS):
            self._sync_one(store, sts)

    def _revisions(self, store: Store, sts: JsonObj) -> dict[str, JsonObj]:
        """Ensure a ControllerRevision for the current template; return all by name."""
        namespace, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        uid = sts["metadata"]["uid"]
        owned = {
            cr["metadata"]["name"]: cr
            for cr in store.list(CONTROLLERREVISIONS, namespace)
            if controller_uid(cr) == uid
        }
        template = sts["spec"]["template"]
        update_name = f"{name}-{template_hash(template)}"
        top = max((int(cr.get("revision", 0)) for cr in owned.values()), default=0)
        current = owned.get(update_name)
        if current is None:
            owned[update_name] = store.create(
                CONTROLLERREVISIONS,
                {
                    "metadata": {
                        "name": update_name,
                        "namespace": namespace,
                        "labels": {
                            **(template.get("metadata", {}).get("labels") or {}),
                            REVISION_LABEL: update_name,
                        },
                        "ownerReferences": [owner_reference(sts)],
                    },
                    # Stored as the strategic merge patch `kubectl rollout undo` applies.
                    "data": {"spec": {"template": {**template, "$patch": "replace"}}},
                    "revision": top + 1,
                },
            )
        elif int(current.get("revision", 0)) < top:
            current["revision"] = top + 1
            owned[update_name] = store.update(CONTROLLERREVISIONS, current)
        return owned

    def _sync_one(self, store: Store, sts: JsonObj) -> None:
        name, spec = sts["metadata"]["name"], sts["spec"]
        revisions = self._revisions(store, sts)
        update_rev = f"{name}-{template_hash(spec['template'])}"
        status: JsonObj = sts.get("status") or {}
        current_rev = status.get("currentRevision") or update_rev
        if current_rev not in revisions:
            current_rev = update_rev
        _trim_history(store, sts, revisions, {current_rev, update_rev})
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0)) if rolling else 0
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        replicas = int(spec.get("replicas", 1))
        pods: dict[int, JsonObj] = {}
        for pod in pods_by_controller(store, sts["metadata"]["namespace"]).get(
            sts["metadata"]["uid"], []
        ):
            ordinal = _ordinal(name, pod)
            if ordinal is not None:
                pods[ordinal] = pod
        self._converge(store, sts, pods, revisions, current_rev, update_rev, partition, ordered)
        if rolling and len(pods) == replicas and all(is_ready(p) for p in pods.values()):
            for ordinal in range(replicas - 1, partition - 1, -1):
                pod = pods[ordinal]
                if pod["metadata"]["labels"].get(REVISION_LABEL) != update_rev:
                    store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                    del pods[ordinal]
                    break
        self._write_status(store, sts, pods, current_rev, update_rev, rolling)

    @staticmethod
    def _converge(
        store: Store,
        sts: JsonObj,
        pods: dict[int, JsonObj],
        revisions: dict[str, JsonObj],
        current_rev: str,
        update_rev: str,
        partition: int,
        ordered: bool,
    ) -> None:
        """Create missing ordinals upwards and remove surplus ones downwards."""
        replicas = int(sts["spec"].get("replicas", 1))
        for ordinal in range(replicas):
            pod = pods.get(ordinal)
            if pod is None:
                revision = current_rev if ordinal < partition else update_rev
                pods[ordinal] = _create_pod(store, sts, ordinal, revisions[revision], revision)
                if ordered:
                    return
            elif ordered and not is_ready(pod):
                return
        for ordinal in sorted((o for o in pods if o >= replicas), reverse=True):
            pod = pods.pop(ordinal)
            store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
            if ordered:
                return

    @staticmethod
    def _write_status(
        store: Store,
        sts: JsonObj,
        pods: dict[int, JsonObj],
        current_rev: str,
        update_rev: str,
        rolling: bool,
    ) -> None:
        revision_counts = [p["metadata"]["labels"].get(REVISION_LABEL) for p in pods.values()]
        ready = sum(1 for p in pods.values() if is_ready(p))
        updated = revision_counts.count(update_rev)
        if rolling and updated == len(pods) == ready == int(sts["spec"].get("replicas", 1)):
            current_rev = update_rev
        counts = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "currentReplicas": revision_counts.count(current_rev),
            "updatedReplicas": updated,
            "availableReplicas": ready,
        }
        status: JsonObj = {"observedGeneration": sts["metadata"]["generation"]}
        status.update({k: v for k, v in counts.items() if v or k == "replicas"})
        status.update(currentRevision=current_rev, updateRevision=update_rev, collisionCount=0)
        if status != sts.get("status"):
            sts["status"] = status
            store.update(STATEFULSETS, sts, status_only=True)


def _create_pod(
    store: Store, sts: JsonObj, ordinal: int, revision: JsonObj, revision_name: str
) -> JsonObj:
    name = f"{sts['metadata']['name']}-{ordinal}"
    pod = pod_from_template(
        sts,
        _template_of(revision),
        name,
        {REVISION_LABEL: revision_name, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)},
    )
    pod["spec"]["hostname"] = name
    if sts["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    return store.create(PODS, pod)


def _template_of(revision: JsonObj) -> JsonObj:
    template = dict(revision["data"]["spec"]["template"])
    template.pop("$patch", None)
    return template


def _trim_history(
    store: Store, sts: JsonObj, revisions: dict[str, JsonObj], in_use: set[str]
) -> None:
    limit = int(sts["spec"].get("revisionHistoryLimit", 10))
    idle = sorted(
        (cr for name, cr in revisions.items() if name not in in_use),
        key=lambda cr: int(cr.get("revision", 0)),
    )
    for cr in idle[: max(0, len(idle) - limit)]:
        store.delete(CONTROLLERREVISIONS, cr["metadata"]["namespace"], cr["metadata"]["name"])
        del revisions[cr["metadata"]["name"]]
