"""Builders for the manifests scenarios need most, as plain dicts.

The emulator's `add_*` helpers use them, and tests can use them too, e.g. to
create the same Deployment through the real client or `kubectl apply`.
"""

from __future__ import annotations

from typing import Any

JsonObj = dict[str, Any]


def pod_template(container: str, image: str, labels: dict[str, str]) -> JsonObj:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [{"name": container, "image": image}]},
    }


def deployment(
    namespace: str,
    name: str,
    *,
    replicas: int = 1,
    image: str = "app:1",
    labels: dict[str, str] | None = None,
    progress_deadline_seconds: int = 600,
    strategy: JsonObj | None = None,
) -> JsonObj:
    """An apps/v1 Deployment with one container named after it; labels default to app=NAME."""
    labels = labels or {"app": name}
    spec: JsonObj = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(labels)},
        "template": pod_template(name, image, labels),
        "progressDeadlineSeconds": progress_deadline_seconds,
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def statefulset(
    namespace: str,
    name: str,
    *,
    replicas: int = 1,
    image: str = "app:1",
    labels: dict[str, str] | None = None,
    update_strategy: JsonObj | None = None,
    pod_management_policy: str = "OrderedReady",
) -> JsonObj:
    labels = labels or {"app": name}
    spec: JsonObj = {
        "replicas": replicas,
        "serviceName": name,
        "selector": {"matchLabels": dict(labels)},
        "template": pod_template(name, image, labels),
        "podManagementPolicy": pod_management_policy,
    }
    if update_strategy is not None:
        spec["updateStrategy"] = update_strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def hpa(
    namespace: str,
    name: str,
    *,
    min_replicas: int = 1,
    max_replicas: int = 10,
    target: str | None = None,
    target_kind: str = "Deployment",
) -> JsonObj:
    """An autoscaling/v2 HPA on CPU utilisation for `target` (default: the workload NAME)."""
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": target_kind,
                "name": target or name,
            },
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": cpu}],
        },
    }


def pdb(
    namespace: str,
    name: str,
    *,
    selector: dict[str, str],
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
) -> JsonObj:
    spec: JsonObj = {"selector": {"matchLabels": dict(selector)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
