"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

kubectl renders whatever columns the server sends, so these mirror the real
apiserver's printers (READY, STATUS, RESTARTS, UP-TO-DATE, ...); a person
watching a demo with `kubectl get pods` sees CrashLoopBackOff exactly where a
cluster would show it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from remediator.testing.kube import resources as r
from remediator.testing.kube.resources import ResourceType

JsonObj = dict[str, Any]
Column = tuple[str, str, Callable[[JsonObj], Any]]


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
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


def _pdb_field(field: str) -> Callable[[JsonObj], Any]:
    return lambda obj: str(obj["spec"].get(field, "N/A"))


_AGE: Column = ("Age", "string", lambda o: age(o["metadata"].get("creationTimestamp")))
_COLUMNS: dict[ResourceType, list[Column]] = {
    r.PODS: [
        ("Ready", "string", _pod_ready),
        ("Status", "string", _pod_status),
        ("Restarts", "string", _restarts),
        _AGE,
        ("IP", "string", lambda o: _status(o).get("podIP", "<none>")),
        ("Node", "string", lambda o: o["spec"].get("nodeName", "<none>")),
    ],
    r.DEPLOYMENTS: [
        ("Ready", "string", _ready_of_wanted),
        ("Up-to-date", "integer", lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", lambda o: _status(o).get("availableReplicas", 0)),
        _AGE,
        ("Images", "string", _images),
        ("Selector", "string", _selector),
    ],
    r.REPLICASETS: [
        ("Desired", "integer", lambda o: o["spec"].get("replicas", 0)),
        ("Current", "integer", lambda o: _status(o).get("replicas", 0)),
        ("Ready", "integer", lambda o: _status(o).get("readyReplicas", 0)),
        _AGE,
        ("Images", "string", _images),
        ("Selector", "string", _selector),
    ],
    r.STATEFULSETS: [
        ("Ready", "string", _ready_of_wanted),
        _AGE,
        ("Images", "string", _images),
    ],
    r.HPAS: [
        ("Reference", "string", lambda o: "{kind}/{name}".format(**o["spec"]["scaleTargetRef"])),
        ("Targets", "string", lambda o: "<unknown>"),
        ("MinPods", "integer", lambda o: o["spec"].get("minReplicas", 1)),
        ("MaxPods", "integer", lambda o: o["spec"].get("maxReplicas", 0)),
        ("Replicas", "integer", lambda o: _status(o).get("currentReplicas", 0)),
        _AGE,
    ],
    r.PDBS: [
        ("Min Available", "string", _pdb_field("minAvailable")),
        ("Max Unavailable", "string", _pdb_field("maxUnavailable")),
        ("Allowed Disruptions", "integer", lambda o: _status(o).get("disruptionsAllowed", 0)),
        _AGE,
    ],
    r.NAMESPACES: [("Status", "string", lambda o: _status(o).get("phase", "Active")), _AGE],
    r.LEASES: [("Holder", "string", _holder), _AGE],
    r.CONTROLLERREVISIONS: [
        ("Controller", "string", _controller),
        ("Revision", "integer", lambda o: o.get("revision", 0)),
        _AGE,
    ],
}
# Columns after these indices are only shown with `-o wide`.
_WIDE_FROM = {r.PODS: 4, r.DEPLOYMENTS: 4, r.REPLICASETS: 4, r.STATEFULSETS: 2}


def render(rt: ResourceType, objects: list[JsonObj], rv: str, include_object: str) -> JsonObj:
    columns: list[Column] = [("Name", "string", lambda o: o["metadata"]["name"])]
    columns += _COLUMNS.get(rt, [_AGE])
    wide_from = _WIDE_FROM.get(rt, len(columns)) + 1
    definitions = [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": 1 if i >= wide_from else 0,
        }
        for i, (name, kind, _) in enumerate(columns)
    ]
    rows = []
    for obj in objects:
        row: JsonObj = {"cells": [get(obj) for _, _, get in columns]}
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
