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


def _plain(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
) -> ResourceType:
    """A type stored and served as it is: no controller, status or generation of its own
    (what `kubectl apply` of the deploy/ manifests needs, and RBAC's objects)."""
    return ResourceType(
        group,
        version,
        kind,
        plural,
        kind.lower(),
        namespaced=namespaced,
        short_names=short_names,
        categories=categories,
        status_subresource=False,
        tracks_generation=False,
    )


SERVICEACCOUNTS = _plain("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",))
CONFIGMAPS = _plain("", "v1", "ConfigMap", "configmaps", short_names=("cm",))
SECRETS = _plain("", "v1", "Secret", "secrets")
SERVICES = _plain("", "v1", "Service", "services", short_names=("svc",), categories=("all",))
PVCS = _plain("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",))
NETWORKPOLICIES = _plain(
    "networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short_names=("netpol",)
)
RBAC = "rbac.authorization.k8s.io"
ROLES = _plain(RBAC, "v1", "Role", "roles")
CLUSTERROLES = _plain(RBAC, "v1", "ClusterRole", "clusterroles", namespaced=False)
ROLEBINDINGS = _plain(RBAC, "v1", "RoleBinding", "rolebindings")
CLUSTERROLEBINDINGS = _plain(
    RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False
)
# The Prometheus Operator's CRDs, served as if installed.
MONITORING = "monitoring.coreos.com"
SERVICEMONITORS = _plain(
    MONITORING, "v1", "ServiceMonitor", "servicemonitors", short_names=("smon",)
)
PODMONITORS = _plain(MONITORING, "v1", "PodMonitor", "podmonitors", short_names=("pmon",))
PROMETHEUSRULES = _plain(
    MONITORING, "v1", "PrometheusRule", "prometheusrules", short_names=("promrule",)
)
ALERTMANAGERCONFIGS = _plain(
    MONITORING, "v1alpha1", "AlertmanagerConfig", "alertmanagerconfigs", short_names=("amcfg",)
)
# Create-only: answered by the RBAC authorizer, never stored (server.py).
SELFSUBJECTACCESSREVIEWS = _plain(
    "authorization.k8s.io",
    "v1",
    "SelfSubjectAccessReview",
    "selfsubjectaccessreviews",
    namespaced=False,
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
    SERVICEACCOUNTS,
    CONFIGMAPS,
    SECRETS,
    SERVICES,
    PVCS,
    NETWORKPOLICIES,
    ROLES,
    CLUSTERROLES,
    ROLEBINDINGS,
    CLUSTERROLEBINDINGS,
    SERVICEMONITORS,
    PODMONITORS,
    PROMETHEUSRULES,
    ALERTMANAGERCONFIGS,
    SELFSUBJECTACCESSREVIEWS,
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
