"""The storage interface the engine depends on; SQLite implements it, PostgreSQL can too.

Every method is one durable step of the decision record. The claim of a run
(`claim_run`) is the idempotency point: a unique (episode, playbook) row, so re-sent
notifications and several replicas sharing a PostgreSQL store act at most once per episode.

`Store` is the union of the aggregates' protocols (store/protocols.py), one per repository; it
also carries each repository as an attribute (`store.runs`, `store.outbox`, ...) for code that
needs one aggregate only.
"""

from __future__ import annotations

from typing import Protocol

from remediator.store.protocols import (
    DigestWork,
    EpisodeStore,
    GovernanceStore,
    IncidentStore,
    IntakeStore,
    OutboxStore,
    RunStore,
    SlackStore,
    StormStore,
    TimerStore,
)


class StoreUnavailable(Exception):
    """The store cannot take a write now (locked, disk full, down): answer 503, retry later."""


class Store(
    IntakeStore,
    EpisodeStore,
    RunStore,
    OutboxStore,
    TimerStore,
    GovernanceStore,
    StormStore,
    IncidentStore,
    SlackStore,
    Protocol,
):
    @property
    def intake(self) -> IntakeStore: ...
    @property
    def episodes(self) -> EpisodeStore: ...
    @property
    def runs(self) -> RunStore: ...
    @property
    def outbox(self) -> OutboxStore: ...
    @property
    def timers(self) -> TimerStore: ...
    @property
    def governance(self) -> GovernanceStore: ...
    @property
    def storm(self) -> StormStore: ...
    @property
    def incidents(self) -> IncidentStore: ...
    @property
    def slack(self) -> SlackStore: ...

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be read and written now."""
        ...


__all__ = ["DigestWork", "Store", "StoreUnavailable"]
