"""The storm breaker's record: the sightings it decides on, the alerts an open breaker holds
(one row each, written with the digest's cost, no run), and the breaker's openings and
closings. The rules are the engine's (engine/guards/storm_rules.py). At most one breaker is
open: a unique partial index, so two replicas opening it at once make one row and one page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.store.codec import dumps
from remediator.store.postgres.database import Database
from remediator.store.postgres.governance import write_audit
from remediator.store.postgres.rows import record, records
from remediator.store.records import BreakerRecord, DecisionKind
from remediator.store.storm_records import HeldAlert, Sighting, StormPicture

_INSERT = (
    "INSERT INTO storm_sightings (episode_id, target_key, namespace, playbook, alertname, at, "
    "held_by) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (episode_id) DO "
)
# Sighted alerts a playbook handles count towards a storm.
_COUNTED = "playbook IS NOT NULL AND at >= $1"


def _rows(
    sightings: Sequence[Sighting], at: datetime, held_by: int | None
) -> list[tuple[Any, ...]]:
    return [
        (s.episode_id, s.target_key, s.namespace, s.playbook, s.alertname, at, held_by)
        for s in sightings
    ]


class StormRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sightings -----------------------------------------------------------------------
    async def add_sightings(self, sightings: Sequence[Sighting]) -> None:
        if sightings:
            await self.db.executemany(_INSERT + "NOTHING", _rows(sightings, self.db.now(), None))

    async def hold_alerts(
        self, breaker_id: int, sightings: Sequence[Sighting], reason: str
    ) -> None:
        if not sightings:
            return
        at = self.db.now()
        async with self.db.transaction() as conn:
            await conn.executemany(
                _INSERT + "UPDATE SET held_by = excluded.held_by",
                _rows(sightings, at, breaker_id),
            )
            # Handled, and no work when it resolves: nothing ran, nothing to close or report.
            await conn.execute(
                "UPDATE episodes SET firing_handled_at = $1, no_work = true "
                "WHERE id = ANY($2::text[])",
                at,
                [s.episode_id for s in sightings],
            )
            await conn.executemany(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at) "
                "VALUES ($1,$2,$3,$4,$5)",
                [
                    (s.episode_id, s.playbook, DecisionKind.STORM_HELD, reason, at)
                    for s in sightings
                ],
            )

    async def mark_refused(self, episode_id: str, kind: str) -> None:
        await self.db.execute(
            "UPDATE storm_sightings SET refused = $1 WHERE episode_id = $2", kind, episode_id
        )

    async def storm_picture(self, since: datetime, known_since: datetime | None) -> StormPicture:
        row = await self.db.fetchrow(
            "SELECT count(DISTINCT target_key), count(refused) FROM storm_sightings "
            f"WHERE {_COUNTED}",
            since,
        )
        assert row is not None
        alerting, refused = int(row[0]), int(row[1])
        by_ns = await self._by_namespace(since)
        known, known_by_ns = 0, {}
        if known_since is not None:
            known = int(
                await self.db.fetchval(
                    f"SELECT count(DISTINCT target_key) FROM storm_sightings WHERE {_COUNTED}",
                    known_since,
                )
            )
            known_by_ns = await self._by_namespace(known_since)
        return StormPicture(
            alerting=alerting,
            alerting_by_namespace=by_ns,
            refused=refused,
            known=known,
            known_by_namespace=known_by_ns,
        )

    async def _by_namespace(self, since: datetime) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT coalesce(namespace, ''), count(DISTINCT target_key) FROM storm_sightings "
            f"WHERE {_COUNTED} GROUP BY 1",
            since,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def held_alerts(self, breaker_id: int, limit: int = 10_000) -> list[HeldAlert]:
        rows = await self.db.fetch(
            "SELECT episode_id, alertname, target_key, namespace, playbook, at "
            "FROM storm_sightings WHERE held_by = $1 ORDER BY at, episode_id LIMIT $2",
            breaker_id,
            limit,
        )
        return records(HeldAlert, rows)

    async def count_held(self, breaker_id: int) -> int:
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM storm_sightings WHERE held_by = $1", breaker_id
            )
        )

    # -- the breaker ---------------------------------------------------------------------
    async def open_breaker(
        self, reason: str, details: dict[str, Any], expires_at: datetime | None
    ) -> BreakerRecord | None:
        at = self.db.now()
        async with self.db.transaction() as conn:
            # The unique index on the open breaker: a second opener (of any replica) inserts
            # nothing, and does not page.
            breaker_id = await conn.fetchval(
                "INSERT INTO breaker (opened_at, reason, details, expires_at) "
                "VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING "
                "RETURNING id",
                at,
                reason,
                dumps(details),
                expires_at,
            )
            if breaker_id is None:
                return None
            await write_audit(
                conn, "storm-breaker", "breaker_open", "breaker", reason, details, at=at
            )
        return BreakerRecord(breaker_id, at, reason, details, expires_at)

    async def current_breaker(self) -> BreakerRecord | None:
        row = await self.db.fetchrow(
            "SELECT * FROM breaker WHERE closed_at IS NULL ORDER BY id LIMIT 1"
        )
        return record(BreakerRecord, row) if row else None

    async def close_breaker(
        self, *, who: str, reason: str, at: datetime | None = None
    ) -> BreakerRecord | None:
        closed = at or self.db.now()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE breaker SET closed_at = $1, closed_by = $2, close_reason = $3 "
                "WHERE closed_at IS NULL RETURNING *",
                closed,
                who,
                reason,
            )
            if row is None:
                return None
            await write_audit(conn, who, "breaker_close", "breaker", reason, at=self.db.now())
        return record(BreakerRecord, row)

    async def last_breaker_close(self) -> datetime | None:
        value: datetime | None = await self.db.fetchval("SELECT max(closed_at) FROM breaker")
        return value

    async def latest_breaker(self) -> BreakerRecord | None:
        row = await self.db.fetchrow("SELECT * FROM breaker ORDER BY id DESC LIMIT 1")
        return record(BreakerRecord, row) if row else None

    async def get_breaker(self, breaker_id: int) -> BreakerRecord | None:
        row = await self.db.fetchrow("SELECT * FROM breaker WHERE id = $1", breaker_id)
        return record(BreakerRecord, row) if row else None
