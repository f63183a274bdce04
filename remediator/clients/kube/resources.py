"""The API paths of the resources the playbooks read and change.

Paths are built from validated names and still percent-encoded by the ApiClient, so a name can
never step out of its collection (`../` becomes `..%2F`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    kind: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The request path template: `{namespace}` and `{name}` are filled in and encoded by
        the ApiClient; `subresource` is one of our constants."""
        path = f"{self.prefix}/namespaces/{{namespace}}/{self.plural}"
        if name is not None:
            path += "/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path

    def display(
        self, namespace: str, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The concrete path, for the record and for messages."""
        return self.path(namespace, name, subresource).format(namespace=namespace, name=name)


PODS = Resource("/api/v1", "pods", "Pod")
DEPLOYMENTS = Resource("/apis/apps/v1", "deployments", "Deployment")
REPLICASETS = Resource("/apis/apps/v1", "replicasets", "ReplicaSet")
STATEFULSETS = Resource("/apis/apps/v1", "statefulsets", "StatefulSet")
HPAS = Resource("/apis/autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
# KEDA's CRD: absent from most clusters, which the client reports as "no ScaledObjects".
SCALEDOBJECTS = Resource("/apis/keda.sh/v1alpha1", "scaledobjects", "ScaledObject")

SCALE = "scale"
EVICTION = "eviction"

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
