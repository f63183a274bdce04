"""Defaulting and validation applied to every write, as the apiserver does.

Defaults matter for more than looks: the Deployment controller decides whether
a ReplicaSet matches the Deployment by comparing pod templates, and kubectl
sends templates back (on `rollout undo`) after a round trip through Go structs.
Both sides only compare equal if stored templates carry the same defaults the
real apiserver would have filled in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from remediator_testing.kube import errors, selectors
from remediator_testing.kube.resources import (
    DEPLOYMENTS,
    EVENTS,
    HPAS,
    LEASES,
    NAMESPACES,
    PDBS,
    PODS,
    REPLICASETS,
    STATEFULSETS,
    ResourceType,
)

JsonObj = dict[str, Any]

_WORKLOADS = (DEPLOYMENTS, REPLICASETS, STATEFULSETS)


def _default_container(container: JsonObj) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    pull = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
    container.setdefault("imagePullPolicy", pull)
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: JsonObj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        _default_container(container)


def initial_pod_status() -> JsonObj:
    """What the apiserver stores for a new pod, before any kubelet reports."""
    return {"phase": "Pending", "qosClass": "BestEffort"}


def _default_workload(rt: ResourceType, obj: JsonObj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    if rt != REPLICASETS:
        spec.setdefault("revisionHistoryLimit", 10)
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))
    if rt == DEPLOYMENTS:
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
    elif rt == STATEFULSETS:
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)


def apply_defaults(rt: ResourceType, obj: JsonObj) -> None:
    if rt in _WORKLOADS:
        _default_workload(rt, obj)
    elif rt == PODS:
        default_pod_spec(obj.setdefault("spec", {}))
        obj["status"] = initial_pod_status()
    elif rt == NAMESPACES:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif rt == HPAS:
        obj.setdefault("spec", {}).setdefault("minReplicas", 1)
    elif rt == LEASES:
        _normalize_times(rt, obj.get("spec") or {}, ("acquireTime", "renewTime"), micro=True)
    elif rt == EVENTS:
        _normalize_times(rt, obj, ("firstTimestamp", "lastTimestamp"), micro=False)
        _normalize_times(rt, obj, ("eventTime",), micro=True)


def _normalize_times(
    rt: ResourceType, fields: JsonObj, names: tuple[str, ...], micro: bool
) -> None:
    """Re-encode timestamps as the apiserver does (clients send any RFC 3339 offset)."""
    for name in names:
        value = fields.get(name)
        if value is None:
            continue
        try:
            parsed = datetime.fromisoformat(str(value)).astimezone(UTC)
        except ValueError as exc:
            raise errors.bad_request(f"{rt.kind}.{name}: invalid time {value!r}") from exc
        fields[name] = parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _require_int(rt: ResourceType, name: str, field: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or value < minimum:
        raise errors.invalid(
            rt, name, field, f"Invalid value: {value!r}: must be greater than or equal to {minimum}"
        )


def _validate_pod_spec(rt: ResourceType, name: str, field: str, spec: JsonObj) -> None:
    containers = spec.get("containers") or []
    if not containers:
        raise errors.invalid(rt, name, f"{field}.containers", "Required value")
    for i, container in enumerate(containers):
        for key in ("name", "image"):
            if not container.get(key):
                raise errors.invalid(rt, name, f"{field}.containers[{i}].{key}", "Required value")


def validate(rt: ResourceType, obj: JsonObj) -> None:
    name = obj.get("metadata", {}).get("name", "")
    spec = obj.get("spec") or {}
    if rt in _WORKLOADS:
        _require_int(rt, name, "spec.replicas", spec.get("replicas"), 0)
        selector = spec.get("selector")
        if not selector:
            raise errors.invalid(rt, name, "spec.selector", "Required value")
        labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        if not selectors.matches(selectors.from_label_selector(selector), labels):
            raise errors.invalid(
                rt,
                name,
                "spec.template.metadata.labels",
                f"Invalid value: {labels!r}: `selector` does not match template `labels`",
            )
        _validate_pod_spec(rt, name, "spec.template.spec", spec["template"].get("spec") or {})
    elif rt == PODS:
        _validate_pod_spec(rt, name, "spec", spec)
    elif rt == HPAS:
        _require_int(rt, name, "spec.minReplicas", spec.get("minReplicas"), 1)
        _require_int(rt, name, "spec.maxReplicas", spec.get("maxReplicas"), spec["minReplicas"])
        if not (spec.get("scaleTargetRef") or {}).get("name"):
            raise errors.invalid(rt, name, "spec.scaleTargetRef.name", "Required value")
    elif rt == PDBS and "minAvailable" in spec and "maxUnavailable" in spec:
        raise errors.invalid(rt, name, "spec", "minAvailable and maxUnavailable cannot be both set")
