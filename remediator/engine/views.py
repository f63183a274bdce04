"""What the admin API and the web page read: the engine's read side.

HTTP never reads the store itself: it asks these views (and `Governance` for operator state),
so the two surfaces show the same record, and a second store backend changes nothing above
the engine. One episode is gathered in one place to keep the surfaces from drifting apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remediator.store import Store, StoreUnavailable
from remediator.store.records import (
    ActionRecord,
    ApprovalRecord,
    AuditRecord,
    DecisionRecord,
    EpisodeRecord,
    EscalationRecord,
    IncidentRecord,
    IncidentState,
    ReplicaRecord,
    RunRecord,
    VerificationRecord,
)

# The record types the surfaces show, and the store's outage, named from here.
__all__ = [
    "ActionRecord",
    "ApprovalRecord",
    "AuditRecord",
    "EpisodeRecord",
    "EpisodeRow",
    "EpisodeView",
    "IncidentRecord",
    "IncidentState",
    "ReplicaRecord",
    "StoreUnavailable",
    "Views",
]


@dataclass(frozen=True)
class EpisodeView:
    episode: EpisodeRecord
    decisions: list[DecisionRecord]
    runs: list[RunRecord]
    actions: list[ActionRecord]
    calls: list[dict[str, Any]]
    verifications: list[VerificationRecord]
    approvals: list[ApprovalRecord]
    escalations: list[EscalationRecord]
    reports: list[dict[str, Any]]


@dataclass(frozen=True)
class EpisodeRow:
    """One line of a timeline: what fired and what came of it."""

    episode: EpisodeRecord
    playbook: str | None
    target: str | None
    run_state: str | None
    decision: str | None
    decision_reason: str | None
    verification: str | None


class Views:
    def __init__(self, store: Store, backend: str, dispatch_depth: Callable[[], int]) -> None:
        self._store = store
        self._backend = backend
        self._dispatch_depth = dispatch_depth

    async def ping(self) -> None:
        """Raises StoreUnavailable when the store cannot be written."""
        await self._store.ping()

    async def store_status(self) -> tuple[dict[str, Any], dict[str, int]]:
        """The store's health and size, and the outbox's pending messages per channel."""
        status: dict[str, Any] = {"backend": self._backend, "ok": True}
        try:
            await self._store.ping()
            status["episodes"] = await self._store.count_episodes()
            outbox = await self._store.outbox_pending()
        except StoreUnavailable as exc:
            status.update(ok=False, error=str(exc))
            outbox = {}
        return status, outbox

    async def replicas(self) -> list[ReplicaRecord]:
        """Every replica sharing the store (live and fenced) with what each holds; [] when
        the store cannot be read."""
        try:
            return await self._store.replicas()
        except StoreUnavailable:
            return []

    @property
    def dispatch_depth(self) -> int:
        return self._dispatch_depth()

    async def episodes(
        self,
        *,
        status: str | None = None,
        alertname: str | None = None,
        namespace: str | None = None,
        playbook: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[EpisodeRecord]:
        return await self._store.list_episodes(
            status=status,
            alertname=alertname,
            namespace=namespace,
            playbook=playbook,
            since=since,
            limit=limit,
        )

    async def episode_exists(self, episode_id: str) -> bool:
        return await self._store.get_episode(episode_id) is not None

    async def episode(self, episode_id: str) -> EpisodeView | None:
        store = self._store
        found = await store.get_episode(episode_id)
        if found is None:
            return None
        runs = await store.runs_for(episode_id)
        approvals = [await store.get_approval(r.id) for r in runs]
        return EpisodeView(
            episode=found,
            decisions=await store.decisions_for(episode_id),
            runs=runs,
            actions=await store.actions_for(episode_id),
            calls=await store.calls_for(episode_id),
            verifications=await store.verifications_for(episode_id),
            approvals=[a for a in approvals if a is not None],
            escalations=await store.escalations_for(episode_id),
            reports=await store.outbox_for(episode_id),
        )

    async def row(self, episode: EpisodeRecord) -> EpisodeRow:
        store = self._store
        runs = await store.runs_for(episode.id)
        decisions = await store.decisions_for(episode.id)
        verifications = await store.verifications_for(episode.id)
        last_run = runs[-1] if runs else None
        last_decision = decisions[-1] if decisions else None
        return EpisodeRow(
            episode=episode,
            playbook=last_run.playbook
            if last_run
            else (last_decision.playbook if last_decision else None),
            target=last_run.target_key if last_run else None,
            run_state=last_run.state if last_run else None,
            decision=last_decision.kind if last_decision else None,
            decision_reason=last_decision.reason if last_decision else None,
            verification=verifications[-1].result if verifications else None,
        )

    async def approval(self, run_id: int) -> ApprovalRecord | None:
        return await self._store.get_approval(run_id)

    async def incidents(self, state: IncidentState | None = None) -> list[IncidentRecord]:
        return await self._store.list_incidents(state=state)

    async def incident(self, incident_id: int) -> IncidentRecord | None:
        return await self._store.get_incident(incident_id)
