"""RBAC mode: authorize each request as the API server's RBAC authorizer does.

Off by default. `KubeEmulator.enable_rbac()` turns it on: a request bearing a token registered
with `add_token` acts as that user (a service account is `system:serviceaccount:NS:NAME`) and
gets exactly what the stored Roles, ClusterRoles and their bindings grant it; anything else is
answered 403 with the API server's Status body. A request without a token acts as the
cluster's administrator (the test itself, or `kubectl` with the emulator's kubeconfig); an
unknown token is 401. Discovery and OpenAPI documents are open to every user, as the default
`system:discovery` role makes them, and so is creating a SelfSubjectAccessReview (the default
`system:basic-user`), which `review` answers from the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from remediator_testing.kube import errors
from remediator_testing.kube.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    ROLEBINDINGS,
    ROLES,
)
from remediator_testing.kube.store import Store

JsonObj = dict[str, Any]
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Attributes:
    """What RBAC decides on: who asks for which verb on which resource where."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def attributes(user: str, method: str, path: str, query: dict[str, str]) -> Attributes | None:
    """The request's resource attributes; None for a non-resource path (discovery, OpenAPI,
    version)."""
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        group, rest = "", segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:
        group, rest = segments[1], segments[3:]
    else:
        return None
    if not rest:
        return None
    namespace = ""
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name and not namespace:
        namespace = name  # a namespace object is authorized in itself, as the API server does
    verb = {
        "GET": "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list"),
        "HEAD": "get" if name else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method, method.lower())
    return Attributes(user, verb, group, resource, subresource, namespace, name)


def _covers(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def rule_allows(rule: JsonObj, attrs: Attributes) -> bool:
    """One PolicyRule of a Role or ClusterRole (resource rules only)."""
    if not _covers(rule.get("verbs") or [], attrs.verb):
        return False
    if not _covers(rule.get("apiGroups") or [], attrs.group):
        return False
    resources = rule.get("resources") or []
    wanted = attrs.full_resource
    if not (
        "*" in resources
        or wanted in resources
        or (attrs.subresource and f"*/{attrs.subresource}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(attrs.name) and attrs.name in names)


def _subject_is(subject: JsonObj, binding_namespace: str, user: str) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{subject.get('name')}"
    if kind == "User":
        return user == subject.get("name")
    return False


class Authorizer:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.enabled = False
        self.tokens: dict[str, str] = {}
        # Every decision taken for a token's user: (attributes, allowed).
        self.decisions: list[tuple[Attributes, bool]] = []

    def _rules_of(self, ref: JsonObj, namespace: str) -> list[JsonObj]:
        if ref.get("kind") == "ClusterRole":
            role = self._store.get(CLUSTERROLES, "", str(ref.get("name")))
        else:
            role = self._store.get(ROLES, namespace, str(ref.get("name")))
        return list((role or {}).get("rules") or [])

    def rules_for(self, user: str, namespace: str) -> list[JsonObj]:
        """Every PolicyRule that applies to `user` in `namespace` ("" : cluster scope)."""
        found: list[JsonObj] = []
        for binding in self._store.list(CLUSTERROLEBINDINGS):
            if any(_subject_is(s, "", user) for s in binding.get("subjects") or []):
                found += self._rules_of(binding.get("roleRef") or {}, "")
        if namespace:
            for binding in self._store.list(ROLEBINDINGS, namespace):
                if any(_subject_is(s, namespace, user) for s in binding.get("subjects") or []):
                    found += self._rules_of(binding.get("roleRef") or {}, namespace)
        return found

    def allows(self, attrs: Attributes) -> bool:
        return any(rule_allows(rule, attrs) for rule in self.rules_for(attrs.user, attrs.namespace))

    def user(self, request: web.Request) -> str | None:
        """The request's user; None for the administrator (no token, or RBAC mode off)."""
        header = request.headers.get("Authorization", "")
        if not self.enabled or not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        user = self.tokens.get(token) if header.startswith("Bearer ") else None
        if user is None:
            raise errors.ApiError(401, "Unauthorized", reason="Unauthorized")
        return user

    def check(self, request: web.Request) -> None:
        """Raise the API server's 401 or 403 when the request may not proceed."""
        user = self.user(request)
        if user is None:
            return
        attrs = attributes(user, request.method, request.path, dict(request.query))
        if attrs is None or (attrs.group, attrs.resource, attrs.verb) == REVIEW:
            return
        allowed = self.allows(attrs)
        self.decisions.append((attrs, allowed))
        if not allowed:
            raise forbidden(attrs)


REVIEW = ("authorization.k8s.io", "selfsubjectaccessreviews", "create")


def review(authorizer: Authorizer, user: str | None, body: JsonObj) -> JsonObj:
    """The answer to a SelfSubjectAccessReview: may the requesting user do `spec`'s
    resourceAttributes? The administrator may do anything."""
    wanted = ((body.get("spec") or {}).get("resourceAttributes")) or {}
    if user is None:
        allowed = True
    else:
        attrs = Attributes(
            user,
            str(wanted.get("verb", "")),
            str(wanted.get("group", "")),
            str(wanted.get("resource", "")),
            str(wanted.get("subresource", "")),
            str(wanted.get("namespace", "")),
            str(wanted.get("name", "")),
        )
        allowed = authorizer.allows(attrs)
    status: JsonObj = {"allowed": allowed}
    if not allowed:
        status["reason"] = ""
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": body.get("spec") or {},
        "status": status,
    }


def forbidden(attrs: Attributes) -> errors.ApiError:
    """The 403 the API server answers, word for word."""
    group_resource = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    what = f'{group_resource} "{attrs.name}"' if attrs.name else group_resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    message = (
        f'{what} is forbidden: User "{attrs.user}" cannot {attrs.verb} resource '
        f'"{attrs.full_resource}" in API group "{attrs.group}" {where}'
    )
    details: JsonObj = {"name": attrs.name} if attrs.name else {}
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    return errors.ApiError(403, message, reason="Forbidden", details=details)
