"""Kubernetes: does the API server answer, and does the daemon hold every RBAC rule the
enabled playbooks need in every namespace in scope?

Each rule `remediator rbac` would grant is asked of the API server as a SelfSubjectAccessReview
(as the daemon's own identity; any authenticated user may ask about itself), so a missing rule
is named before an incident needs it, and nothing is read or changed to find out.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from remediator.clients.kube import KubeClient, KubeError, open_kube
from remediator.config import BlastRadiusSettings, ConfigError, Settings
from remediator.engine.assembly import load_registry
from remediator.engine.preflight.finding import Finding
from remediator.engine.rbac import needed_rules
from remediator.playbook.access import Rule

SUBJECT = "kubernetes"


def namespaces_in_scope(blast: BlastRadiusSettings) -> list[str] | None:
    """The namespaces actions may touch, by name; None when the scope is not a list of names
    (no allow list, or a wildcard in it), so only a cluster-wide grant proves access."""
    allowed = blast.allow_namespaces
    if not allowed or any(set(pattern) & set("*?[") for pattern in allowed):
        return None
    return [
        ns
        for ns in allowed
        if not any(fnmatchcase(ns, pattern) for pattern in blast.deny_namespaces)
    ]


async def check_kubernetes(settings: Settings) -> list[Finding]:
    if settings.kubernetes.mode == "none":
        return [Finding(SUBJECT, True, "not configured (kubernetes.mode: none), nothing to check")]
    registry, _ = load_registry(settings)  # files that fail to load are `check`'s findings
    rules, _ = needed_rules(registry, settings)
    try:
        client = await open_kube(settings.kubernetes)
    except ConfigError as exc:
        return [Finding(SUBJECT, False, "; ".join(exc.problems))]
    try:
        return await _check(client, namespaces_in_scope(settings.guards.blast_radius), rules)
    finally:
        await client.close()


def _attributes(rule: Rule, namespace: str | None) -> dict[str, str]:
    resource, _, subresource = rule.resource.partition("/")
    return {
        "verb": rule.verb,
        "group": rule.group,
        "resource": resource,
        "subresource": subresource,
        "namespace": namespace or "",
    }


async def _check(
    client: KubeClient, namespaces: list[str] | None, rules: frozenset[Rule]
) -> list[Finding]:
    try:
        version = await client.version()
    except KubeError as exc:
        return [Finding(SUBJECT, False, f"the API server does not answer: {exc}")]
    findings = [
        Finding(SUBJECT, True, f"the API server answers (version {version.get('gitVersion', '?')})")
    ]
    if not rules:
        return [*findings, Finding(SUBJECT, True, "no enabled playbook needs Kubernetes access")]
    for namespace in namespaces if namespaces is not None else [None]:
        subject = f"{SUBJECT} namespace {namespace}" if namespace else f"{SUBJECT} all namespaces"
        denied: list[str] = []
        try:
            for rule in sorted(rules):
                status = await client.access_review(_attributes(rule, namespace))
                if not status.get("allowed"):
                    denied.append(str(rule))
        except KubeError as exc:
            findings.append(Finding(subject, False, f"cannot ask the API server: {exc}"))
            continue
        if denied:
            hint = "grant what `remediator rbac` prints"
            if namespace is None:
                hint += (
                    " (the scope is every namespace not denied: guards.blast_radius."
                    "allow_namespaces is empty or has wildcards)"
                )
            findings.append(Finding(subject, False, f"may not {', '.join(denied)}; {hint}"))
        else:
            findings.append(
                Finding(
                    subject,
                    True,
                    f"every rule the enabled playbooks need is granted ({len(rules)} rules)",
                )
            )
    return findings
