"""The embedded store: one SQLite file in WAL mode, nothing else to run.

`SQLiteStore` composes the repositories, one per aggregate, over one `Database` (connections,
the write lock, group commit). Each repository is also an attribute (`store.runs`,
`store.outbox`, ...); the flat `Store` API forwards each method to the repository that owns
it (store/flat.py, shared with the PostgreSQL store, is the index of who owns what).
"""

from __future__ import annotations

from pathlib import Path

from remediator.clock import SYSTEM, Clock
from remediator.store.flat import FlatStore
from remediator.store.journal import Journal, journal_path
from remediator.store.resends import Resends
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.episodes import EpisodeRepository
from remediator.store.sqlite.governance import GovernanceRepository
from remediator.store.sqlite.incidents import IncidentRepository
from remediator.store.sqlite.intake import IntakeRepository
from remediator.store.sqlite.outbox import OutboxRepository
from remediator.store.sqlite.replicas import ReplicaRepository
from remediator.store.sqlite.runs import RunRepository
from remediator.store.sqlite.slack import SlackRepository
from remediator.store.sqlite.storm import StormRepository
from remediator.store.sqlite.timers import TimerRepository


class SQLiteStore(FlatStore):
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 2000,
        clock: Clock = SYSTEM,
        replica: str | None = None,
    ) -> None:
        self.path = path
        self.database = db = Database(
            path,
            synchronous=synchronous,
            busy_timeout_ms=busy_timeout_ms,
            clock=clock,
            replica=replica,
        )
        self.journal_file = Journal(journal_path(path), synchronous=synchronous)
        resends = Resends()
        self.intake = IntakeRepository(db, self.journal_file, resends)
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
        return False  # one process per SQLite file

    async def open(self) -> None:
        await self.database.open()
        await self.intake.open()

    async def close(self) -> None:
        await self.intake.close()
        await self.database.close()
        await self.journal_file.close()

    async def ping(self) -> None:
        await self.database.ping()
        await self.journal_file.ping()
