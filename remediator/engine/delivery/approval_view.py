"""What an approver needs to see besides the change: the pending approval and the guards' view.

A run waits for approval only if every action it would make passed every guard in its dry
run; the live state of the operator-driven guards (kill switches, the storm breaker) is shown
as it is when the report is built, and every guard is checked again when the run is approved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.config import SlackApprovalSettings, playbook_entry
from remediator.store import Store
from remediator.store.records import ApprovalRecord, RunRecord, Scope


async def guards_view(store: Store, run: RunRecord, at: datetime) -> list[str]:
    mine = {(Scope.GLOBAL, ""), (Scope.PLAYBOOK, run.playbook), (Scope.TARGET, run.target_key)}
    switches = [s for s in await store.kill_switches(at=at) if (s.scope, s.key) in mine]
    breaker = await store.current_breaker()
    lines = [
        "kill switch: "
        + (
            "; ".join(
                f"engaged ({s.scope} {s.key}) by {s.who}: {s.reason}".strip() for s in switches
            )
            if switches
            else "none engaged"
        ),
        "storm breaker: "
        + (
            f"open since {breaker.opened_at:%H:%M} UTC: {breaker.reason}"
            if breaker is not None and breaker.open_at(at)
            else "closed"
        ),
        "rate limits, blast radius, concurrency: every action above passed in the dry run",
    ]
    return lines


async def approval_document(store: Store, run: RunRecord, at: datetime) -> dict[str, Any] | None:
    """The pending approval of a run, for its report (the guards as they are `at`); None if
    the run never waited."""
    approval: ApprovalRecord | None = await store.get_approval(run.id)
    if approval is None:
        return None
    return {
        "state": approval.state,
        "requested_at": approval.requested_at.isoformat(),
        "expires_at": approval.expires_at.isoformat(),
        "guards": await guards_view(store, run, at),
    }


def approvers(settings: SlackApprovalSettings, playbook: str, target_key: str) -> list[str]:
    """Who may decide a run: those listed for its playbook and for its target's namespace."""
    parts = target_key.split("/")
    namespace = parts[1] if len(parts) == 3 else None
    allowed = list(playbook_entry(settings.playbooks, playbook) or [])
    if namespace is not None:
        allowed += settings.namespaces.get(namespace, [])
    return list(dict.fromkeys(allowed))
