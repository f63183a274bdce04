"""What the kubelet would report for each pod.

There are no containers here, so pod status is derived from time and from the
scenario's health rules: a pod is Pending (ContainerCreating) until
`ready_after` has passed since it was first seen, then either Running and
Ready, or, when one of its images is marked unhealthy for its workload,
Running but not ready with a growing restartCount and CrashLoopBackOff.
Rules are re-evaluated on every pass, so marking an image healthy again lets
crash-looping pods recover the way they would once a dependency comes back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from remediator_testing.kube.resources import PODS, REPLICASETS
from remediator_testing.kube.store import Store, now_iso
from remediator_testing.kube.templates import controller_ref

JsonObj = dict[str, Any]

HOST_IP = "10.0.0.10"


@dataclass
class _Clock:
    born: float
    last_crash: float | None = None


class HealthRules:
    """Which images crash-loop, per namespace and owning workload."""

    def __init__(self) -> None:
        self._unhealthy: set[tuple[str, str, str]] = set()

    def set(self, namespace: str, workload: str, image: str, healthy: bool) -> None:
        key = (namespace, workload, image)
        if healthy:
            self._unhealthy.discard(key)
        else:
            self._unhealthy.add(key)

    def crashing(self, namespace: str, workload: str, image: str) -> bool:
        return (namespace, workload, image) in self._unhealthy


def workload_name(store: Store, pod: JsonObj) -> str:
    """Name of the top-level controller (Deployment or StatefulSet) owning a pod."""
    namespace = pod["metadata"]["namespace"]
    ref = controller_ref(pod)
    if ref is None:
        return str(pod["metadata"]["name"])
    if ref["kind"] == "ReplicaSet":
        rs = store.get(REPLICASETS, namespace, ref["name"])
        owner = controller_ref(rs) if rs else None
        if owner is not None:
            return str(owner["name"])
    return str(ref["name"])


class PodLifecycle:
    def __init__(self, rules: HealthRules, ready_after: float, crash_interval: float) -> None:
        self._rules = rules
        self._ready_after = ready_after
        self._crash_interval = crash_interval
        self._clocks: dict[str, _Clock] = {}
        self._ips = itertools.count(2)

    def sync(self, store: Store, now: float) -> None:
        seen = set()
        for pod in store.list(PODS):
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            clock = self._clocks.setdefault(uid, _Clock(born=now))
            status = self._status(store, pod, clock, now)
            if status != pod.get("status"):
                pod["status"] = status
                store.update(PODS, pod, status_only=True)
        for uid in set(self._clocks) - seen:
            del self._clocks[uid]

    def _status(self, store: Store, pod: JsonObj, clock: _Clock, now: float) -> JsonObj:
        old: JsonObj = pod.get("status") or {}
        containers = pod["spec"].get("containers") or []
        started = now >= clock.born + self._ready_after
        namespace, workload = pod["metadata"]["namespace"], workload_name(store, pod)
        crashing = {
            c["name"]
            for c in containers
            if started and self._rules.crashing(namespace, workload, c.get("image", ""))
        }
        # One restart clock per pod: every crashing container restarts on the same beat.
        crashed_now = bool(crashing) and (
            clock.last_crash is None or now - clock.last_crash >= self._crash_interval
        )
        if crashed_now:
            clock.last_crash = now
        old_statuses = {c.get("name"): c for c in old.get("containerStatuses") or []}
        statuses = [
            _container_status(
                c,
                old_statuses.get(c["name"]) or {},
                started,
                c["name"] in crashing,
                crashed_now and c["name"] in crashing,
            )
            for c in containers
        ]
        ready = started and not crashing
        status: JsonObj = {
            "phase": "Running" if started else "Pending",
            "conditions": _conditions(old, ready),
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": old.get("startTime") or pod["metadata"]["creationTimestamp"],
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }
        if started:
            ip = old.get("podIP") or f"10.244.0.{next(self._ips) % 250 + 2}"
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        return status


def _container_status(
    container: JsonObj, old: JsonObj, started: bool, crashing: bool, crashed_now: bool
) -> JsonObj:
    restarts = int(old.get("restartCount", 0)) + (1 if crashed_now else 0)
    status: JsonObj = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "restartCount": restarts,
        "ready": False,
        "started": False,
    }
    if old.get("lastState"):
        status["lastState"] = old["lastState"]
    if not started:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        return status
    status["imageID"] = f"{status['image']}@sha256:emulated"
    status["containerID"] = f"containerd://{container['name']}-{restarts}"
    if crashing:
        if crashed_now:
            now = now_iso()
            status["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
        status["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container {container['name']}",
            }
        }
    else:
        running = old.get("state", {}).get("running") or {"startedAt": now_iso()}
        status.update(state={"running": running}, ready=True, started=True)
    return status


def _conditions(old: JsonObj, ready: bool) -> list[JsonObj]:
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    wanted = {
        "PodReadyToStartContainers": True,
        "Initialized": True,
        "Ready": ready,
        "ContainersReady": ready,
        "PodScheduled": True,
    }
    conditions = []
    for kind, ok in wanted.items():
        status = "True" if ok else "False"
        before = previous.get(kind)
        condition: JsonObj = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": before["lastTransitionTime"]
            if before and before.get("status") == status
            else now_iso(),
        }
        if not ok:
            condition["reason"] = "ContainersNotReady"
        conditions.append(condition)
    return conditions


def is_ready(pod: JsonObj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False
