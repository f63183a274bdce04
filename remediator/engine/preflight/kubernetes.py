"""Kubernetes: does the API server answer, and may the daemon read what its playbooks read in
every namespace in scope?

Kept apart so further checks (e.g. a SelfSubjectAccessReview per RBAC rule a playbook
declares) can be added here without touching the rest of `check --online`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from remediator.clients.kube import KubeClient, KubeError, open_kube
from remediator.clients.kube.resources import DEPLOYMENTS, PODS, STATEFULSETS
from remediator.config import BlastRadiusSettings, ConfigError, Settings
from remediator.engine.preflight.finding import Finding

SUBJECT = "kubernetes"
READ = (DEPLOYMENTS, STATEFULSETS, PODS)  # what every Kubernetes playbook reads first


def namespaces_in_scope(blast: BlastRadiusSettings) -> list[str] | None:
    """The namespaces actions may touch, by name; None when the scope is not a list of names
    (no allow list, or a wildcard in it), so only a cluster-wide read proves access."""
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
    try:
        client = await open_kube(settings.kubernetes)
    except ConfigError as exc:
        return [Finding(SUBJECT, False, "; ".join(exc.problems))]
    try:
        return await _check(client, namespaces_in_scope(settings.guards.blast_radius))
    finally:
        await client.close()


async def _check(client: KubeClient, namespaces: list[str] | None) -> list[Finding]:
    try:
        version = await client.version()
    except KubeError as exc:
        return [Finding(SUBJECT, False, f"the API server does not answer: {exc}")]
    findings = [
        Finding(SUBJECT, True, f"the API server answers (version {version.get('gitVersion', '?')})")
    ]
    for namespace in namespaces if namespaces is not None else [None]:
        subject = f"{SUBJECT} namespace {namespace}" if namespace else f"{SUBJECT} all namespaces"
        failed = []
        for resource in READ:
            try:
                await client.list_one(resource, namespace)
            except KubeError as exc:
                failed.append(f"cannot list {resource.plural}: {exc}")
        if failed:
            if namespace is None:
                failed.append(
                    "the scope is every namespace not denied (guards.blast_radius."
                    "allow_namespaces is empty or has wildcards); list the namespaces by name "
                    "if the daemon may only read those"
                )
            findings.append(Finding(subject, False, "; ".join(failed)))
        else:
            names = ", ".join(r.plural for r in READ)
            findings.append(Finding(subject, True, f"{names} can be listed"))
    return findings
