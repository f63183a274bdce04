"""`remediator explain`: what the daemon would do with a payload, computed offline.

It uses the same matching and target resolution as the pipeline (`choose`), so what it prints
is what the daemon decides; it never contacts a cluster or a database and changes nothing.
With `--online` it also reads each Kubernetes target (one GET, nothing else) to say which
GitOps controller manages it and the policy each kind of change would meet
(`playbook/gitops.py`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from remediator.alertmanager import Notification
from remediator.clients.kube import KubeClient, KubeError
from remediator.clients.kube.resources import DEPLOYMENTS, STATEFULSETS
from remediator.config import Settings
from remediator.engine.budgets import budget_view
from remediator.engine.runs.pipeline import choose
from remediator.playbook import Registry, ResolveScope
from remediator.playbook.gitops import GitOpsRules

_READABLE = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}


def explain(
    notification: Notification,
    registry: Registry,
    settings: Settings,
    params: dict[str, BaseModel],
    scope: ResolveScope,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for alert in notification.alerts:
        entry: dict[str, Any] = {
            "alertname": alert.alertname,
            "status": alert.status,
            "episode": alert.episode_id,
            "fingerprint": alert.fingerprint_or_computed,
            "starts_at": alert.startsAt.isoformat(),
        }
        if alert.status == "resolved":
            entry["decision"] = "resolved: closes the episode, never acts"
            out.append(entry)
            continue
        choice = choose(registry, settings, alert.labels, scope)
        entry["passed_over"] = [{"playbook": s.name, "why": why} for s, why in choice.passed_over]
        if choice.chosen is None:
            critical = alert.labels.get("severity") == "critical"
            entry["decision"] = "no playbook" + ("; escalated (critical)" if critical else "")
        else:
            spec = choice.chosen
            entry["playbook"] = spec.name
            entry["mode"] = settings.mode_of(spec.name).value
            entry["does"] = spec.description
            entry["params"] = (
                params[spec.name].model_dump(mode="json") if spec.name in params else {}
            )
            entry["budget"] = budget_view(spec, params.get(spec.name), settings)
            if choice.target is not None:
                entry["target"] = choice.target.key
            if choice.refusal is not None:
                kind, reason = choice.refusal
                entry["refused"] = kind
                entry["decision"] = f"refused: {choice.target_error or reason}; escalated"
            else:
                entry["decision"] = {
                    "shadow": "records the exact calls it would make; changes nothing",
                    "approve": "records the calls and waits for an operator's approval",
                    "auto": "acts, subject to the guards, then verifies",
                }[entry["mode"]]
        out.append(entry)
    return out


async def add_gitops(entries: list[dict[str, Any]], client: KubeClient, rules: GitOpsRules) -> None:
    """Read each entry's workload target and say who manages it (`entry["gitops"]`)."""
    for entry in entries:
        target = str(entry.get("target") or "")
        kind, _, rest = target.partition("/")
        namespace, _, name = rest.partition("/")
        resource = _READABLE.get(kind)
        if resource is None or not name:
            continue
        try:
            obj = await client.find(resource, namespace, name)
        except KubeError as exc:
            entry["gitops"] = {"error": f"cannot read {target}: {exc}"}
            continue
        if obj is None:
            entry["gitops"] = {"error": f"{target} does not exist"}
            continue
        owner = rules.owner_of(obj)
        entry["gitops"] = (
            {"owner": None}
            if owner is None
            else {
                "owner": str(owner),
                "mark": owner.mark,
                "suspended": owner.suspended,
                "policies": rules.policies(str(entry.get("playbook")), owner),
            }
        )


def _gitops_line(found: dict[str, Any]) -> str:
    if "error" in found:
        return str(found["error"])
    if found.get("owner") is None:
        return "no GitOps controller marks it"
    policies = ", ".join(f"{kind} {p}" for kind, p in found["policies"].items())
    off = "; its reconciliation is off" if found.get("suspended") else ""
    return f"{found['owner']} ({found['mark']}){off}; policies: {policies}"


def render(entries: list[dict[str, Any]], truncated: int) -> str:
    lines = []
    if truncated:
        lines.append(f"! Alertmanager truncated {truncated} alert(s) from this notification")
    for e in entries:
        lines.append(f"{e['alertname'] or '(no alertname)'} [{e['status']}] episode {e['episode']}")
        if "playbook" in e:
            lines.append(f"  playbook: {e['playbook']} (mode {e['mode']}): {e['does']}")
        if "target" in e:
            lines.append(f"  target:   {e['target']}")
        for part in e.get("budget", {}).values():
            lines.append(f"  budget:   {part['says']}")
        if "gitops" in e:
            lines.append(f"  gitops:   {_gitops_line(e['gitops'])}")
        for p in e.get("passed_over", []):
            lines.append(f"  not used: {p['playbook']} ({p['why']})")
        lines.append(f"  decision: {e['decision']}")
    return "\n".join(lines)
