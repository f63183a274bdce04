"""The shared store: the decision record in PostgreSQL, for one replica or several.

`PostgresStore` composes the same repositories as `SQLiteStore` (one per aggregate, the
same names and the same semantics), over one `Database` (an asyncpg pool, transactions, errors
mapped to StoreUnavailable); the flat `Store` API forwards each method to the repository that
owns it. There is no local journal: the webhook's 2xx means committed in PostgreSQL.
"""

from __future__ import annotations

from remediator.clock import SYSTEM, Clock
from remediator.store.flat import FlatStore
from remediator.store.postgres.database import Database
from remediator.store.postgres.episodes import EpisodeRepository
from remediator.store.postgres.governance import GovernanceRepository
from remediator.store.postgres.incidents import IncidentRepository
from remediator.store.postgres.intake import IntakeRepository
from remediator.store.postgres.outbox import OutboxRepository
from remediator.store.postgres.replicas import ReplicaRepository
from remediator.store.postgres.runs import RunRepository
from remediator.store.postgres.slack import SlackRepository
from remediator.store.postgres.storm import StormRepository
from remediator.store.postgres.timers import TimerRepository
from remediator.store.resends import Resends


class PostgresStore(FlatStore):
    def __init__(
        self,
        dsn: str,
        *,
        pool_min: int = 1,
        pool_max: int = 10,
        clock: Clock = SYSTEM,
        replica: str | None = None,
    ) -> None:
        self.database = db = Database(
            dsn, min_size=pool_min, max_size=pool_max, clock=clock, replica=replica
        )
        resends = Resends()
        self.intake = IntakeRepository(db, resends)
        self.episodes = EpisodeRepository(db, resends)
        self.runs = RunRepository(db)
        self.outbox = OutboxRepository(db)
        self.timers = TimerRepository(db)
        self.governance = GovernanceRepository(db)
        self.storm = StormRepository(db)
        self.incidents = IncidentRepository(db)
        self.slack = SlackRepository(db)
        self.coordination = ReplicaRepository(db)

    @property
    def replica(self) -> str:
        return self.database.replica

    @property
    def shared(self) -> bool:
        return True  # any number of processes on one database

    async def open(self) -> None:
        await self.database.open()
        await self.intake.open()

    async def close(self) -> None:
        await self.intake.close()
        await self.database.close()

    async def ping(self) -> None:
        await self.database.ping()
