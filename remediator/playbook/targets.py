"""What a playbook acts on, derived from alert labels without letting a label reach further.

A target names exactly one object. Resolvers validate every name against Kubernetes' DNS rules
(or the configured database names) so `../`, `*`, empty strings or a crafted selector can never
widen what a playbook touches: "zero does not mean all".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# RFC 1123 label (namespaces, most names) and subdomain (pods, deployments may contain dots).
# Always used with `fullmatch`: `$` also matches before a final newline, so `re.match` with a
# trailing `$` would let `kube-system\n` through as a valid name (and a deny list that compares
# exact names would then miss it). The classes are ASCII only: a look-alike such as the
# Cyrillic small ie (U+0435) or a fullwidth digit is not a name character.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class TargetError(ValueError):
    """The alert does not name one valid target; the reason is recorded and escalated."""


@dataclass(frozen=True)
class Target:
    kind: str  # Deployment, StatefulSet, Pod, Database, ...
    name: str
    namespace: str | None = None
    # Extra identifying facts a playbook may need (e.g. the pod behind a Deployment alert).
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """Stable identity for locks, rate limits and kill switches: Kind/namespace/name."""
        return (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class ResolveScope:
    """What the configuration allows a resolver to choose from."""

    databases: frozenset[str] = frozenset()
    # Other label values naming a configured database (alias -> name), so every alias of one
    # database yields the same target key (one lock, one rate limit).
    database_aliases: Mapping[str, str] = field(default_factory=dict, hash=False)


Resolver = Callable[[Mapping[str, str], ResolveScope], Target]


def dns_label(value: str | None, what: str) -> str:
    if not value:
        raise TargetError(f"label {what!r} is missing or empty")
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise TargetError(f"label {what!r} is not a valid Kubernetes name: {value[:80]!r}")
    return value


def dns_subdomain(value: str | None, what: str) -> str:
    if not value:
        raise TargetError(f"label {what!r} is missing or empty")
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise TargetError(f"label {what!r} is not a valid Kubernetes name: {value[:80]!r}")
    return value


def workload(kind: str, label: str, namespace_label: str = "namespace") -> Resolver:
    """A namespaced object named by one label, e.g. workload("Deployment", "deployment")."""

    def resolve(labels: Mapping[str, str], scope: ResolveScope) -> Target:
        namespace = dns_label(labels.get(namespace_label), namespace_label)
        name = dns_subdomain(labels.get(label), label)
        return Target(kind=kind, name=name, namespace=namespace)

    resolve.__doc__ = f"{kind} named by labels {namespace_label!r} and {label!r}"
    return resolve


def deployment(label: str = "deployment") -> Resolver:
    return workload("Deployment", label)


def statefulset(label: str = "statefulset") -> Resolver:
    return workload("StatefulSet", label)


def deployment_of_pod(pod_label: str = "pod", deployment_label: str = "deployment") -> Resolver:
    """The Deployment owning the pod an alert names, so locks, rate limits and the pods-per-
    episode budget count per workload, not per pod. The name comes from the `deployment` label
    when present, else from the pod's name (`api-7d9f8c6b5-x2x7k` -> `api`: Deployment pods
    are named `<deployment>-<template hash>-<suffix>`). The pod is kept in `extra["pod"]`; the
    playbook confirms the ownership through the API before acting, so a wrong guess is refused,
    never acted on."""

    def resolve(labels: Mapping[str, str], scope: ResolveScope) -> Target:
        namespace = dns_label(labels.get("namespace"), "namespace")
        pod = dns_subdomain(labels.get(pod_label), pod_label)
        if labels.get(deployment_label):
            name = dns_subdomain(labels.get(deployment_label), deployment_label)
        else:
            owner, *rest = pod.rsplit("-", 2)
            if len(rest) != 2 or not owner:
                raise TargetError(
                    f"label {deployment_label!r} is missing and pod {pod!r} is not named like "
                    "a Deployment's pod"
                )
            name = dns_subdomain(owner, f"{deployment_label} (from the pod name)")
        return Target(kind="Deployment", name=name, namespace=namespace, extra={"pod": pod})

    resolve.__doc__ = f"the Deployment owning the pod named by label {pod_label!r}"
    return resolve


def database(label: str = "datname", mapping: Mapping[str, str] | None = None) -> Resolver:
    """A database from the config, chosen by a label value (optionally through a mapping)."""

    def resolve(labels: Mapping[str, str], scope: ResolveScope) -> Target:
        raw = labels.get(label)
        if not raw:
            raise TargetError(f"label {label!r} is missing or empty")
        name = mapping.get(raw, raw) if mapping else raw
        name = scope.database_aliases.get(name, name)
        if name not in scope.databases:
            raise TargetError(f"database {raw[:80]!r} is not configured under `databases`")
        return Target(kind="Database", name=name)

    resolve.__doc__ = f"a configured database chosen by label {label!r}"
    return resolve
