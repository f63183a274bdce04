"""Everything the record holds for one episode, read back in one go for assertions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediator.store import Store
from remediator.store.records import (
    ActionRecord,
    DecisionRecord,
    EpisodeRecord,
    EscalationRecord,
    RunRecord,
)


@dataclass
class Outcome:
    episode: EpisodeRecord
    runs: list[RunRecord]
    actions: list[ActionRecord]
    decisions: list[DecisionRecord]
    escalations: list[EscalationRecord]
    calls: list[dict[str, Any]]

    @property
    def run(self) -> RunRecord:
        [only] = self.runs
        return only

    def acted(self) -> list[ActionRecord]:
        return [a for a in self.actions if a.state == "succeeded"]

    def everything(self) -> str:
        """All of it as text, to look for what must never be recorded."""
        return repr([self.runs, self.actions, self.decisions, self.escalations, self.calls])


async def read_outcome(store: Store, episode_id: str) -> Outcome:
    episode = await store.get_episode(episode_id)
    assert episode is not None, f"no episode {episode_id}"
    return Outcome(
        episode=episode,
        runs=await store.runs_for(episode.id),
        actions=await store.actions_for(episode.id),
        decisions=await store.decisions_for(episode.id),
        escalations=await store.escalations_for(episode.id),
        calls=await store.calls_for(episode.id),
    )
