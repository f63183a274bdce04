"""Facts about workloads read from their JSON, as kubectl and the controllers derive them.

Pure functions, no I/O: which ReplicaSet is a Deployment's current revision and which is the
previous one worth rolling back to, when the running code was rolled out, whether a rollout
finished or stalled, which pods crash-loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JsonObj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
HASH_LABEL = "pod-template-hash"
KEDA_PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"


def meta(obj: JsonObj) -> JsonObj:
    found: JsonObj = obj.get("metadata") or {}
    return found


def spec(obj: JsonObj) -> JsonObj:
    found: JsonObj = obj.get("spec") or {}
    return found


def status(obj: JsonObj) -> JsonObj:
    found: JsonObj = obj.get("status") or {}
    return found


def annotations_of(obj: JsonObj) -> dict[str, str]:
    found: dict[str, str] = meta(obj).get("annotations") or {}
    return found


def revision(obj: JsonObj) -> int:
    try:
        return int(annotations_of(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def controller(obj: JsonObj) -> JsonObj | None:
    """The owner reference marked `controller: true`, if any."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            found: JsonObj = ref
            return found
    return None


def controlled_by(obj: JsonObj, owner: JsonObj) -> bool:
    ref = controller(obj)
    return ref is not None and ref.get("uid") == meta(owner).get("uid")


def created(obj: JsonObj) -> datetime | None:
    value = meta(obj).get("creationTimestamp")
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def images(template: JsonObj) -> list[str]:
    return [str(c.get("image", "")) for c in spec(template).get("containers") or []]


def comparable(template: JsonObj) -> JsonObj:
    """A pod template without what a rollout restart or the controller adds: two templates
    equal here run the same code and configuration."""
    result = dict(template)
    metadata = dict(meta(template))
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != HASH_LABEL}
    notes = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != RESTARTED_AT}
    metadata["labels"], metadata["annotations"] = labels, notes
    result["metadata"] = {k: v for k, v in metadata.items() if v}
    return result


def rollback_template(replicaset: JsonObj) -> JsonObj:
    """The template `kubectl rollout undo` restores: the ReplicaSet's, minus its hash label."""
    template = dict(spec(replicaset).get("template") or {})
    metadata = dict(meta(template))
    metadata["labels"] = {
        k: v for k, v in (metadata.get("labels") or {}).items() if k != HASH_LABEL
    }
    template["metadata"] = metadata
    return template


@dataclass(frozen=True)
class History:
    """A Deployment's revisions, newest first, as far as a rollback needs them."""

    current: JsonObj | None  # the ReplicaSet of the Deployment's revision
    previous: JsonObj | None  # the newest older one running different code
    deployed_at: datetime | None  # when the current code was first rolled out

    def describe(self) -> JsonObj:
        def one(rs: JsonObj | None) -> JsonObj | None:
            if rs is None:
                return None
            template = spec(rs).get("template") or {}
            return {
                "replicaset": meta(rs).get("name"),
                "revision": revision(rs),
                "images": images(template),
            }

        return {
            "current": one(self.current),
            "previous": one(self.previous),
            "deployed_at": self.deployed_at.isoformat() if self.deployed_at else None,
        }


def history(deployment: JsonObj, replicasets: list[JsonObj]) -> History:
    """Which revision runs now, since when, and which one a rollback would restore.

    Revisions that differ only by a rollout restart run the same code, so they count as one
    rollout (dated by the first of them) and are never a rollback target: rolling back a
    restart would change nothing.
    """
    owned = sorted(
        (rs for rs in replicasets if controlled_by(rs, deployment)), key=revision, reverse=True
    )
    if not owned:
        return History(None, None, None)
    wanted = revision(deployment)
    current = next((rs for rs in owned if revision(rs) == wanted), owned[0])
    same = comparable(spec(current).get("template") or {})
    older = [rs for rs in owned if revision(rs) < revision(current)]
    chain = [current]
    previous = None
    for rs in older:
        if comparable(spec(rs).get("template") or {}) == same:
            chain.append(rs)
        else:
            previous = rs
            break
    dates = [d for d in (created(rs) for rs in chain) if d is not None]
    return History(current, previous, min(dates) if dates else None)


@dataclass(frozen=True)
class RolloutState:
    done: bool
    failed: str | None  # why the rollout cannot finish (ProgressDeadlineExceeded), if known
    waiting_for: str  # what is still missing, as kubectl rollout status says it

    def describe(self) -> JsonObj:
        return {"done": self.done, "failed": self.failed, "waiting_for": self.waiting_for}


def rollout_state(deployment: JsonObj) -> RolloutState:
    """What `kubectl rollout status` decides, from the Deployment alone."""
    s, want = status(deployment), int(spec(deployment).get("replicas", 1))
    if int(s.get("observedGeneration", 0)) < int(meta(deployment).get("generation", 0)):
        return RolloutState(False, None, "the controller to observe the new generation")
    for condition in s.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == (
            "ProgressDeadlineExceeded"
        ):
            return RolloutState(False, "ProgressDeadlineExceeded", str(condition.get("message")))
    updated = int(s.get("updatedReplicas", 0))
    if updated < want:
        return RolloutState(False, None, f"{updated} of {want} updated replicas")
    if int(s.get("replicas", 0)) > updated:
        old = int(s.get("replicas", 0)) - updated
        return RolloutState(False, None, f"{old} old replica(s) to terminate")
    available = int(s.get("availableReplicas", 0))
    if available < updated:
        return RolloutState(False, None, f"{available} of {updated} updated replicas available")
    return RolloutState(True, None, "")


def is_ready(pod: JsonObj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status(pod).get("conditions") or []
    )


def crash_looping(pod: JsonObj) -> list[str]:
    """Containers of the pod waiting in CrashLoopBackOff."""
    return [
        str(c.get("name"))
        for c in status(pod).get("containerStatuses") or []
        if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
    ]


def restarts(pod: JsonObj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in status(pod).get("containerStatuses") or [])


def match_labels_selector(workload: JsonObj) -> str | None:
    """The workload's `matchLabels` as a label selector string; None when it has none (a
    selector of matchExpressions only is not listed by label: pods are then found by owner)."""
    labels = (spec(workload).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None
