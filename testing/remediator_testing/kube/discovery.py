"""API discovery documents: what kubectl reads before it can talk to resources.

kubectl maps `deploy`, `po`, `sts`, ... to resources, learns which group/kind
the `scale` and `eviction` subresources speak, and lists `api-resources`, all
from these documents. kubectl 1.32 first asks for aggregated discovery
(`apidiscovery.k8s.io/v2`); answering the legacy APIGroupList with a plain
`application/json` content type is a documented, supported fallback, so only
the legacy format is served.
"""

from __future__ import annotations

from typing import Any

from remediator_testing.kube.resources import (
    PODS,
    RESOURCE_TYPES,
    ResourceType,
    group_versions,
)

JsonObj = dict[str, Any]

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_SUBRESOURCE_VERBS = ["get", "patch", "update"]


def _subresources(rt: ResourceType) -> list[JsonObj]:
    subs: list[JsonObj] = []
    if rt.status_subresource:
        subs.append({"name": f"{rt.plural}/status", "kind": rt.kind, "verbs": _SUBRESOURCE_VERBS})
    if rt.scale_subresource:
        subs.append(
            {
                "name": f"{rt.plural}/scale",
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": _SUBRESOURCE_VERBS,
            }
        )
    if rt == PODS:
        subs.append(
            {
                "name": "pods/eviction",
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }
        )
    return [{"singularName": "", "namespaced": rt.namespaced, **sub} for sub in subs]


def resource_list(group_version: str) -> JsonObj | None:
    types = [rt for rt in RESOURCE_TYPES if rt.api_version == group_version]
    if not types:
        return None
    resources: list[JsonObj] = []
    for rt in types:
        entry: JsonObj = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        resources.extend(_subresources(rt))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def core_versions(server_address: str) -> JsonObj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> JsonObj:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list() -> JsonObj:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name, versions) for name, versions in group_versions().items()],
    }


def group(name: str) -> JsonObj | None:
    versions = group_versions().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}
