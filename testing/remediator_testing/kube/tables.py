"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

kubectl renders whatever columns the server sends, so these mirror the real
apiserver's printers (READY, STATUS, RESTARTS, UP-TO-DATE, ...); a person
watching a demo with `kubectl get pods` sees CrashLoopBackOff exactly where a
cluster would show it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from remediator_testing.kube import resources as r
from remediator_testing.kube.resources import ResourceType

JsonObj = dict[str, Any]


class Column(NamedTuple):
    name: str
    type: str
    get: Callable[[JsonObj], Any]
    wide: bool = False  # shown only with `-o wide`


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        created = datetime.fromisoformat(timestamp)
    except ValueError:
        return "<invalid>"
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _status(obj: JsonObj) -> JsonObj:
    status: JsonObj = obj.get("status") or {}
    return status


def _pod_status(pod: JsonObj) -> str:
    for container in _status(pod).get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            if state.get(key, {}).get("reason"):
                return str(state[key]["reason"])
    return str(_status(pod).get("phase", "Unknown"))


def _pod_ready(pod: JsonObj) -> str:
    statuses = _status(pod).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(pod: JsonObj) -> str:
    statuses = _status(pod).get("containerStatuses") or []
    count = sum(int(c.get("restartCount", 0)) for c in statuses)
    finished = [
        c["lastState"]["terminated"]["finishedAt"]
        for c in statuses
        if (c.get("lastState") or {}).get("terminated", {}).get("finishedAt")
    ]
    return f"{count} ({age(max(finished))} ago)" if count and finished else str(count)


def _images(obj: JsonObj) -> str:
    containers = obj["spec"].get("template", {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("image", "") for c in containers)


def _selector(obj: JsonObj) -> str:
    labels = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _ready_of_wanted(obj: JsonObj) -> str:
    return f"{_status(obj).get('readyReplicas', 0)}/{obj['spec'].get('replicas', 0)}"


def _holder(lease: JsonObj) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity", ""))


def _controller(obj: JsonObj) -> str:
    ref = (obj["metadata"].get("ownerReferences") or [{}])[0]
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _scale_target(hpa: JsonObj) -> str:
    ref = hpa["spec"].get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _involved(event: JsonObj) -> str:
    ref = event.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _pdb_field(field: str) -> Callable[[JsonObj], Any]:
    return lambda obj: str(obj["spec"].get(field, "N/A"))


_NAME = Column("Name", "string", lambda o: o["metadata"]["name"])
_AGE = Column("Age", "string", lambda o: age(o["metadata"].get("creationTimestamp")))
_COLUMNS: dict[ResourceType, list[Column]] = {
    r.PODS: [
        _NAME,
        Column("Ready", "string", _pod_ready),
        Column("Status", "string", _pod_status),
        Column("Restarts", "string", _restarts),
        _AGE,
        Column("IP", "string", lambda o: _status(o).get("podIP", "<none>"), wide=True),
        Column("Node", "string", lambda o: o["spec"].get("nodeName", "<none>"), wide=True),
    ],
    r.DEPLOYMENTS: [
        _NAME,
        Column("Ready", "string", _ready_of_wanted),
        Column("Up-to-date", "integer", lambda o: _status(o).get("updatedReplicas", 0)),
        Column("Available", "integer", lambda o: _status(o).get("availableReplicas", 0)),
        _AGE,
        Column("Images", "string", _images, wide=True),
        Column("Selector", "string", _selector, wide=True),
    ],
    r.REPLICASETS: [
        _NAME,
        Column("Desired", "integer", lambda o: o["spec"].get("replicas", 0)),
        Column("Current", "integer", lambda o: _status(o).get("replicas", 0)),
        Column("Ready", "integer", lambda o: _status(o).get("readyReplicas", 0)),
        _AGE,
        Column("Images", "string", _images, wide=True),
        Column("Selector", "string", _selector, wide=True),
    ],
    r.STATEFULSETS: [
        _NAME,
        Column("Ready", "string", _ready_of_wanted),
        _AGE,
        Column("Images", "string", _images, wide=True),
    ],
    r.HPAS: [
        _NAME,
        Column("Reference", "string", _scale_target),
        Column("Targets", "string", lambda o: "<unknown>"),
        Column("MinPods", "integer", lambda o: o["spec"].get("minReplicas", 1)),
        Column("MaxPods", "integer", lambda o: o["spec"].get("maxReplicas", 0)),
        Column("Replicas", "integer", lambda o: _status(o).get("currentReplicas", 0)),
        _AGE,
    ],
    r.PDBS: [
        _NAME,
        Column("Min Available", "string", _pdb_field("minAvailable")),
        Column("Max Unavailable", "string", _pdb_field("maxUnavailable")),
        Column("Allowed Disruptions", "integer", lambda o: _status(o).get("disruptionsAllowed", 0)),
        _AGE,
    ],
    r.EVENTS: [
        Column("Last Seen", "string", lambda o: age(o.get("lastTimestamp") or o.get("eventTime"))),
        Column("Type", "string", lambda o: o.get("type", "")),
        Column("Reason", "string", lambda o: o.get("reason", "")),
        Column("Object", "string", _involved),
        Column("Message", "string", lambda o: o.get("message", "")),
        Column("Name", "string", lambda o: o["metadata"]["name"], wide=True),
    ],
    r.NAMESPACES: [
        _NAME,
        Column("Status", "string", lambda o: _status(o).get("phase", "Active")),
        _AGE,
    ],
    r.LEASES: [_NAME, Column("Holder", "string", _holder), _AGE],
    r.CONTROLLERREVISIONS: [
        _NAME,
        Column("Controller", "string", _controller),
        Column("Revision", "integer", lambda o: o.get("revision", 0)),
        _AGE,
    ],
}


def render(rt: ResourceType, objects: list[JsonObj], rv: str, include_object: str) -> JsonObj:
    columns = _COLUMNS.get(rt, [_NAME, _AGE])
    definitions = [
        {
            "name": column.name,
            "type": column.type,
            "format": "name" if column.name == "Name" else "",
            "description": column.name,
            "priority": 1 if column.wide else 0,
        }
        for column in columns
    ]
    rows = []
    for obj in objects:
        row: JsonObj = {"cells": [column.get(obj) for column in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": definitions,
        "rows": rows,
    }
