"""The Deployment controller: one ReplicaSet per template revision, rolling updates.

Follows the real controller's decisions closely enough for rollout tooling to
behave as against a cluster: a template change creates a ReplicaSet with the
next revision, or re-uses (and re-numbers) an existing one with an identical
template, as `rollout undo` relies on; rolling updates honour maxSurge and
maxUnavailable so crash-looping new pods stall the rollout while the old
ReplicaSet keeps serving; paused Deployments only scale. Status is written by
`deployment_status`.
"""

from __future__ import annotations

from typing import Any

from remediator_testing.kube.deployment_status import (
    RolloutStatus,
    spec_replicas,
    status_count,
    surge_and_unavailable,
)
from remediator_testing.kube.resources import DEPLOYMENTS, REPLICASETS
from remediator_testing.kube.store import Store
from remediator_testing.kube.templates import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    controller_uid,
    owner_reference,
    revision_of,
    same_template,
    template_hash,
)

JsonObj = dict[str, Any]


class DeploymentController:
    def __init__(self) -> None:
        self._status = RolloutStatus()

    def sync(self, store: Store, now: float) -> None:
        deployments = store.list(DEPLOYMENTS)
        for deployment in deployments:
            self._sync_one(store, deployment, now)
        self._status.forget_all_but({d["metadata"]["uid"] for d in deployments})

    def _sync_one(self, store: Store, d: JsonObj, now: float) -> None:
        namespace, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        owned = [rs for rs in store.list(REPLICASETS, namespace) if controller_uid(rs) == uid]
        owned.sort(key=lambda rs: (rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))
        new_rs = next(
            (rs for rs in owned if same_template(rs["spec"]["template"], d["spec"]["template"])),
            None,
        )
        olds = [rs for rs in owned if rs is not new_rs]
        paused = bool(d["spec"].get("paused"))
        event: tuple[str, str] | None = None
        if new_rs is None and not paused:
            new_rs = self._create_replicaset(store, d, olds)
            event = (
                "NewReplicaSetCreated",
                f'Created new replica set "{new_rs["metadata"]["name"]}"',
            )
        elif new_rs is not None:
            top = max((revision_of(rs) for rs in olds), default=0)
            if revision_of(new_rs) <= top:
                new_rs = self._set_revision(store, new_rs, top + 1)
                event = (
                    "FoundNewReplicaSet",
                    f'Found new replica set "{new_rs["metadata"]["name"]}"',
                )
        if paused:
            self._scale_paused(store, d, new_rs, olds)
        elif d["spec"]["strategy"].get("type") == "Recreate":
            self._recreate(store, d, new_rs, olds)
        else:
            self._rolling_update(store, d, new_rs, olds)
        self._cleanup(store, d, olds)
        self._status.write(store, d, new_rs, now, event)

    def _create_replicaset(self, store: Store, d: JsonObj, olds: list[JsonObj]) -> JsonObj:
        template = d["spec"]["template"]
        pod_hash = template_hash(template)
        labels = {**(template.get("metadata", {}).get("labels") or {}), HASH_LABEL: pod_hash}
        selector = dict(d["spec"]["selector"])
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        revision = max((revision_of(rs) for rs in olds), default=0) + 1
        rs = {
            "metadata": {
                "name": f"{d['metadata']['name']}-{pod_hash}",
                "namespace": d["metadata"]["namespace"],
                "labels": labels,
                "annotations": {
                    REVISION_ANNOTATION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(d["spec"]["replicas"]),
                },
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": 0,
                "selector": selector,
                "template": {
                    **template,
                    "metadata": {**template.get("metadata", {}), "labels": labels},
                },
            },
        }
        if d["spec"].get("minReadySeconds"):
            rs["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"]
        return store.create(REPLICASETS, rs)

    @staticmethod
    def _set_revision(store: Store, rs: JsonObj, revision: int) -> JsonObj:
        annotations = rs["metadata"].setdefault("annotations", {})
        history = [
            h
            for h in annotations.get("deployment.kubernetes.io/revision-history", "").split(",")
            if h
        ]
        annotations["deployment.kubernetes.io/revision-history"] = ",".join(
            [*history, str(revision_of(rs))]
        )
        annotations[REVISION_ANNOTATION] = str(revision)
        return store.update(REPLICASETS, rs)

    @staticmethod
    def _scale(store: Store, rs: JsonObj, replicas: int) -> None:
        if rs["spec"].get("replicas") != replicas:
            rs["spec"]["replicas"] = replicas
            rs.update(store.update(REPLICASETS, rs))

    def _scale_paused(
        self, store: Store, d: JsonObj, new_rs: JsonObj | None, olds: list[JsonObj]
    ) -> None:
        everything = [*olds, *([new_rs] if new_rs else [])]
        active = [rs for rs in everything if rs["spec"].get("replicas")]
        target = active[0] if len(active) == 1 else None
        if not active and everything:
            target = max(everything, key=revision_of)
        if target is not None:
            self._scale(store, target, int(d["spec"]["replicas"]))

    def _recreate(
        self, store: Store, d: JsonObj, new_rs: JsonObj | None, olds: list[JsonObj]
    ) -> None:
        assert new_rs is not None
        for rs in olds:
            self._scale(store, rs, 0)
        if status_count(olds, "replicas") == 0:
            self._scale(store, new_rs, int(d["spec"]["replicas"]))

    def _rolling_update(
        self, store: Store, d: JsonObj, new_rs: JsonObj | None, olds: list[JsonObj]
    ) -> None:
        assert new_rs is not None
        replicas = int(d["spec"]["replicas"])
        surge, max_unavailable = surge_and_unavailable(d)
        new_replicas = int(new_rs["spec"].get("replicas", 0))
        if new_replicas > replicas:
            self._scale(store, new_rs, replicas)
        elif new_replicas < replicas:
            room = replicas + surge - spec_replicas([*olds, new_rs])
            if room > 0:
                self._scale(store, new_rs, new_replicas + min(room, replicas - new_replicas))
        if spec_replicas(olds) == 0:
            return
        min_available = replicas - max_unavailable
        new_unavailable = int(new_rs["spec"]["replicas"]) - status_count(
            [new_rs], "availableReplicas"
        )
        budget = spec_replicas([*olds, new_rs]) - min_available - new_unavailable
        # Unhealthy old pods go first: removing them costs no availability.
        for rs in olds:
            unhealthy = int(rs["spec"]["replicas"]) - status_count([rs], "availableReplicas")
            if budget > 0 and unhealthy > 0:
                step = min(budget, unhealthy)
                self._scale(store, rs, int(rs["spec"]["replicas"]) - step)
                budget -= step
        removable = status_count([*olds, new_rs], "availableReplicas") - min_available
        for rs in olds:
            step = min(int(rs["spec"]["replicas"]), removable)
            if step > 0:
                self._scale(store, rs, int(rs["spec"]["replicas"]) - step)
                removable -= step

    @staticmethod
    def _cleanup(store: Store, d: JsonObj, olds: list[JsonObj]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in olds
            if not rs["spec"].get("replicas") and not status_count([rs], "replicas")
        ]
        idle.sort(key=revision_of)
        for rs in idle[: max(0, len(idle) - limit)]:
            store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
