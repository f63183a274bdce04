"""Deployment status: replica counts and the Available/Progressing conditions.

`kubectl rollout status` and remediation verification read exactly these
fields, so their rules follow the real controller's `syncRolloutStatus`:
progress (more updated, ready or available pods, fewer old ones) refreshes the
Progressing condition; no progress for `progressDeadlineSeconds` turns it
False with reason ProgressDeadlineExceeded; a complete rollout reports
NewReplicaSetAvailable; a paused Deployment reports DeploymentPaused.
"""

from __future__ import annotations

import math
from typing import Any

from remediator_testing.kube.resources import DEPLOYMENTS, REPLICASETS
from remediator_testing.kube.store import Store, now_iso
from remediator_testing.kube.templates import REVISION_ANNOTATION, controller_uid, revision_of

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


def spec_replicas(rss: list[JsonObj]) -> int:
    return sum(int(rs["spec"].get("replicas", 0)) for rs in rss)


def status_count(rss: list[JsonObj], field: str) -> int:
    return sum(int((rs.get("status") or {}).get(field, 0)) for rs in rss)


class RolloutStatus:
    def __init__(self) -> None:
        # Sub-second deadlines in tests need finer clocks than RFC 3339 timestamps carry.
        self._progress_at: dict[str, float] = {}

    def forget_all_but(self, uids: set[str]) -> None:
        for uid in set(self._progress_at) - uids:
            del self._progress_at[uid]

    def write(
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
        available = status_count(owned, "availableReplicas")
        counts = {
            "replicas": status_count(owned, "replicas"),
            "updatedReplicas": status_count(new, "replicas"),
            "readyReplicas": status_count(owned, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(0, spec_replicas(owned) - available),
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
