"""The catalogue of resource types the emulator serves.

Discovery, routing, the store and the table printer all need the same facts
about each type (group, kind, plural, short names, scope, subresources); keeping
them in one table is what keeps those views consistent with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

_ALL_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = True
    scale_subresource: bool = False
    tracks_generation: bool = True
    # The real Deployment strategy bumps generation on annotation changes too,
    # because the controller copies annotations onto ReplicaSets.
    annotations_bump_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """The `plural.group` form the apiserver uses in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def verbs(self) -> tuple[str, ...]:
        return _ALL_VERBS


NAMESPACES = ResourceType(
    "",
    "v1",
    "Namespace",
    "namespaces",
    "namespace",
    namespaced=False,
    short_names=("ns",),
    tracks_generation=False,
)
PODS = ResourceType(
    "",
    "v1",
    "Pod",
    "pods",
    "pod",
    short_names=("po",),
    categories=("all",),
    tracks_generation=False,
)
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    "deployment",
    short_names=("deploy",),
    categories=("all",),
    scale_subresource=True,
    annotations_bump_generation=True,
)
REPLICASETS = ResourceType(
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    "replicaset",
    short_names=("rs",),
    categories=("all",),
    scale_subresource=True,
)
STATEFULSETS = ResourceType(
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    "statefulset",
    short_names=("sts",),
    categories=("all",),
    scale_subresource=True,
)
CONTROLLERREVISIONS = ResourceType(
    "apps",
    "v1",
    "ControllerRevision",
    "controllerrevisions",
    "controllerrevision",
    status_subresource=False,
    tracks_generation=False,
)
HPAS = ResourceType(
    "autoscaling",
    "v2",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
    "horizontalpodautoscaler",
    short_names=("hpa",),
    categories=("all",),
)
PDBS = ResourceType(
    "policy",
    "v1",
    "PodDisruptionBudget",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    short_names=("pdb",),
)
LEASES = ResourceType(
    "coordination.k8s.io",
    "v1",
    "Lease",
    "leases",
    "lease",
    status_subresource=False,
    tracks_generation=False,
)

EVENTS = ResourceType(
    "",
    "v1",
    "Event",
    "events",
    "event",
    short_names=("ev",),
    status_subresource=False,
    tracks_generation=False,
)
# KEDA's CRD, served as if installed: enough for scenarios where KEDA owns a workload's scale.
SCALEDOBJECTS = ResourceType(
    "keda.sh",
    "v1alpha1",
    "ScaledObject",
    "scaledobjects",
    "scaledobject",
    short_names=("so",),
)

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    PODS,
    EVENTS,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    CONTROLLERREVISIONS,
    HPAS,
    PDBS,
    LEASES,
    SCALEDOBJECTS,
)


def find_type(api_version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.api_version == api_version and rt.plural == plural:
            return rt
    return None


def type_for_kind(api_version: str, kind: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.api_version == api_version and rt.kind == kind:
            return rt
    return None


def group_versions() -> dict[str, list[str]]:
    """Named API groups (the core group excluded) and the versions each serves."""
    groups: dict[str, list[str]] = {}
    for rt in RESOURCE_TYPES:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups
