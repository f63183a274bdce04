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
    ReplicaStore,
    RunStore,
    SlackStore,
    StormStore,
    TimerStore,
)


class StoreUnavailable(Exception):
    """The store cannot take a write now (locked, disk full, down): answer 503, retry later."""


class Fenced(Exception):
    """This replica may not act (store/protocols.py `ReplicaStore`): its replica row was
    fenced by another replica (its lease had expired) or its lease is past, or the run belongs
    to another replica. Nothing was recorded; the action must not be made. Not a
    StoreUnavailable: retrying later does not help a fenced replica."""


class SliceTaken(StoreUnavailable):
    """The journal slice being digested was digested meanwhile by another replica sharing the
    store (PostgreSQL): nothing was written; read the journal again at once."""


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
    ReplicaStore,
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
    @property
    def coordination(self) -> ReplicaStore: ...
    @property
    def replica(self) -> str:
        """This process's replica id (uuid4 hex): the owner of what it claims."""
        ...

    @property
    def shared(self) -> bool:
        """Several processes may share this store (PostgreSQL): claims, leases and fencing
        decide who does what. False for SQLite, where one process is the only replica."""
        ...

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot be read and written now."""
        ...


__all__ = ["DigestWork", "Fenced", "SliceTaken", "Store", "StoreUnavailable"]
