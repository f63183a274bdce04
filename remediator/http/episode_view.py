"""One episode with everything recorded about it, read once for the admin API and the web page.

Both surfaces show the same record; gathering it in one place keeps them from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediator.engine.engine import Engine
from remediator.store.records import (
    ActionRecord,
    ApprovalRecord,
    DecisionRecord,
    EpisodeRecord,
    EscalationRecord,
    RunRecord,
    VerificationRecord,
)


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


async def episode_view(engine: Engine, episode_id: str) -> EpisodeView | None:
    store = engine.store
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
