"""The Deployment controller: ReplicaSets per template revision, rolling updates, status.

Follows the real controller's decisions closely enough for rollout tooling to
behave as against a cluster: a template change creates a ReplicaSet with the
next revision, or re-uses (and re-numbers) an existing one with an identical
template, as `rollout undo` relies on; rolling updates honour maxSurge and
maxUnavailable so crash-looping new pods stall the rollout while the old
ReplicaSet keeps serving; the Progressing condition reports
ProgressDeadlineExceeded after `spec.progressDeadlineSeconds` without progress;
paused Deployments only scale.
"""

from __future__ import annotations

import math
from typing import Any

from remediator.testing.kube.resources import DEPLOYMENTS, REPLICASETS
from remediator.testing.kube.store import Store, now_iso
from remediator.testing.kube.templates import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    controller_uid,
    owner_reference,
    revision_of,
    same_template,
    template_hash,
)

JsonObj = dict[str, Any]


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def surge_and_unavailable(deployment: JsonObj) -> tuple[int, int]:
    spec = deployment["spec"]
    if spec["strategy"].get("type") != "RollingUpdate":
        return 0, 0
    rolling = spec["strategy"].get("rollingUpdate") or {}
    replicas = int(spec["replicas"])
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _count(rss: list[JsonObj], field: str) -> int:
    if field == "spec":
        return sum(int(rs["spec"].get("replicas", 0)) for rs in rss)
    return sum(int((rs.get("status") or {}).get(field, 0)) for rs in rss)


class DeploymentController:
    def __init__(self) -> None:
        # Sub-second deadlines in tests need finer clocks than RFC 3339 timestamps carry.
        self._progress_at: dict[str, float] = {}

    def sync(self, store: Store, now: float) -> None:
        live = set()
        for deployment in store.list(DEPLOYMENTS):
            live.add(deployment["metadata"]["uid"])
            self._sync_one(store, deployment, now)
        for uid in set(self._progress_at) - live:
            del self._progress_at[uid]

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
        self._write_status(store, d, new_rs, now, event)

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
        if _count(olds, "replicas") == 0:
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
            room = replicas + surge - _count([*olds, new_rs], "spec")
            if room > 0:
                self._scale(store, new_rs, new_replicas + min(room, replicas - new_replicas))
        if _count(olds, "spec") == 0:
            return
        min_available = replicas - max_unavailable
        new_unavailable = int(new_rs["spec"]["replicas"]) - _count([new_rs], "availableReplicas")
        budget = _count([*olds, new_rs], "spec") - min_available - new_unavailable
        # Unhealthy old pods go first: removing them costs no availability.
        for rs in olds:
            unhealthy = int(rs["spec"]["replicas"]) - _count([rs], "availableReplicas")
            if budget > 0 and unhealthy > 0:
                step = min(budget, unhealthy)
                self._scale(store, rs, int(rs["spec"]["replicas"]) - step)
                budget -= step
        removable = _count([*olds, new_rs], "availableReplicas") - min_available
        for rs in olds:
            step = min(int(rs["spec"]["replicas"]), removable)
            if step > 0:
                self._scale(store, rs, int(rs["spec"]["replicas"]) - step)
                removable -= step

    @staticmethod
    def _cleanup(store: Store, d: JsonObj, olds: list[JsonObj]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        idle = [
            rs for rs in olds if not rs["spec"].get("replicas") and not _count([rs], "replicas")
        ]
        idle.sort(key=revision_of)
        for rs in idle[: max(0, len(idle) - limit)]:
            store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _write_status(
        self,
        store: Store,
        d: JsonObj,
        new_rs: JsonObj | None,
        now: float,
        event: tuple[str, str] | None,
    ) -> None:
        d = store.require(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"])
        uid = d["metadata"]["uid"]
        owned = [
            rs
            for rs in store.list(REPLICASETS, d["metadata"]["namespace"])
            if controller_uid(rs) == uid
        ]
        new = [rs for rs in owned if new_rs and rs["metadata"]["uid"] == new_rs["metadata"]["uid"]]
        replicas = int(d["spec"]["replicas"])
        old_status: JsonObj = d.get("status") or {}
        available = _count(owned, "availableReplicas")
        counts = {
            "replicas": _count(owned, "replicas"),
            "updatedReplicas": _count(new, "replicas"),
            "readyReplicas": _count(owned, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(0, _count(owned, "spec") - available),
        }
        conditions = {c["type"]: c for c in old_status.get("conditions") or []}
        _, max_unavailable = surge_and_unavailable(d)
        if available >= replicas - max_unavailable:
            _set(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            _set(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        rs_name = new[0]["metadata"]["name"] if new else ""
        self._progressing(d, rs_name, counts, old_status, conditions, now, event)
        status: JsonObj = {"observedGeneration": d["metadata"]["generation"]}
        status.update({k: v for k, v in counts.items() if v})
        status["conditions"] = [
            conditions[k] for k in ("Available", "Progressing") if k in conditions
        ]
        annotations = d["metadata"].setdefault("annotations", {})
        revision_changed = bool(new) and annotations.get(REVISION_ANNOTATION) != str(
            revision_of(new[0])
        )
        if status == old_status and not revision_changed:
            return
        if new:
            annotations[REVISION_ANNOTATION] = str(revision_of(new[0]))
        d["status"] = status
        store.update(DEPLOYMENTS, d, status_only=True)

    def _progressing(
        self,
        d: JsonObj,
        rs_name: str,
        counts: dict[str, int],
        old_status: JsonObj,
        conditions: dict[str, JsonObj],
        now: float,
        event: tuple[str, str] | None,
    ) -> None:
        uid = d["metadata"]["uid"]
        current = conditions.get("Progressing")
        if d["spec"].get("paused"):
            _set(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
            return
        if current is not None and current.get("reason") == "DeploymentPaused":
            _set(conditions, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
            self._progress_at[uid] = now
        if event is not None:
            _set(conditions, "Progressing", "True", *event, force=True)
            self._progress_at[uid] = now
        current = conditions.get("Progressing")
        if (
            current is not None
            and current.get("reason") == "NewReplicaSetAvailable"
            and counts["replicas"] == counts["updatedReplicas"]
        ):
            return
        replicas = int(d["spec"]["replicas"])
        if (
            counts["updatedReplicas"]
            == counts["replicas"]
            == counts["availableReplicas"]
            == replicas
        ):
            _set(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif _progressed(old_status, counts):
            _set(
                conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                force=True,
            )
            self._progress_at[uid] = now
        elif now - self._progress_at.setdefault(uid, now) > int(
            d["spec"]["progressDeadlineSeconds"]
        ):
            _set(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )


def _progressed(old: JsonObj, new: dict[str, int]) -> bool:
    def old_pods(status: Any) -> int:
        return int(status.get("replicas", 0)) - int(status.get("updatedReplicas", 0))

    return (
        new["updatedReplicas"] > old.get("updatedReplicas", 0)
        or old_pods(new) < old_pods(old)
        or new["readyReplicas"] > old.get("readyReplicas", 0)
        or new["availableReplicas"] > old.get("availableReplicas", 0)
    )


def _set(
    conditions: dict[str, JsonObj],
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    force: bool = False,
) -> None:
    """Record a condition; unless forced, an unchanged condition keeps its timestamps."""
    old = conditions.get(kind)
    if (
        not force
        and old is not None
        and (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message)
    ):
        return
    now = now_iso()
    conditions[kind] = {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": old["lastTransitionTime"]
        if old and old.get("status") == status
        else now,
        "reason": reason,
        "message": message,
    }
