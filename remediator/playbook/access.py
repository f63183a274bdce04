"""What a playbook asks of the Kubernetes API, declared as RBAC rules.

Each `Kube` method states the rules it needs (`needs`), as a function of the workload kind it
acts on; a playbook states which methods it calls on which kind (`uses`), or adds rules of its
own (`Rule`). `remediator rbac` turns the union over the enabled playbooks into a Role or
ClusterRole, so a user's playbook gets exactly its own rules too, and the emulator's RBAC mode
proves in tests that nothing is missing and nothing granted is unused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# The workload kinds a `Kube` method can act on, and their API group and plural.
WORKLOADS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
}


@dataclass(frozen=True, order=True)
class Rule:
    """One verb on one resource of one API group ("" is the core group); `resource` is the
    plural, with `/subresource` for a subresource (`deployments/scale`, `pods/eviction`)."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        group = self.group or "core"
        return f"{self.verb} {self.resource} ({group})"


# A rule, or a rule that depends on the workload kind the method acts on.
Need = Rule | Callable[[str], Rule]


def on_workload(verb: str, subresource: str | None = None) -> Callable[[str], Rule]:
    """`verb` on the workload itself (its kind decides the resource)."""

    def rule(kind: str) -> Rule:
        group, plural = WORKLOADS[kind]
        return Rule(group, f"{plural}/{subresource}" if subresource else plural, verb)

    return rule


def needs(*items: Need, when: dict[str, tuple[Need, ...]] | None = None) -> Callable[[F], F]:
    """Declare on a `Kube` method the rules it needs; `when` adds rules for one workload kind
    only (listing a Deployment's pods also lists its ReplicaSets)."""

    def decorator(fn: F) -> F:
        fn.__rbac_needs__ = (items, dict(when or {}))  # type: ignore[attr-defined]
        return fn

    return decorator


def rules_of(method: Callable[..., Any], kind: str) -> frozenset[Rule]:
    """The rules a declared `Kube` method needs when it acts on a workload of `kind`."""
    declared = getattr(method, "__rbac_needs__", None)
    if declared is None:
        raise TypeError(f"{getattr(method, '__qualname__', method)!r} declares no RBAC rules")
    if kind not in WORKLOADS:
        raise ValueError(f"unknown workload kind {kind!r}; one of {', '.join(WORKLOADS)}")
    items, when = declared
    return frozenset(
        item if isinstance(item, Rule) else item(kind) for item in (*items, *when.get(kind, ()))
    )


def uses(*methods: Callable[..., Any], on: str = "Deployment") -> frozenset[Rule]:
    """The rules of the `Kube` methods a playbook calls on workloads of kind `on`, for
    `@playbook(access=...)`; combine several with `|` (and add `Rule`s of your own)."""
    found: set[Rule] = set()
    for method in methods:
        found |= rules_of(method, on)
    return frozenset(found)


def union(parts: Iterable[Iterable[Rule]]) -> frozenset[Rule]:
    return frozenset(rule for part in parts for rule in part)
