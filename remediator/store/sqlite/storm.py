"""The storm breaker's record: the sightings it decides on, the alerts an open breaker holds
(one row each, written with the digest's cost, no run), and the breaker's openings and
closings. The rules are the engine's (engine/guards/storm_rules.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.store.codec import dumps, parse_ts, ts
from remediator.store.records import BreakerRecord, DecisionKind
from remediator.store.sqlite.database import Database, fetch_one
from remediator.store.sqlite.governance import write_audit
from remediator.store.sqlite.rows import record, records
from remediator.store.storm_records import HeldAlert, Sighting, StormPicture

_INSERT = (
    "INSERT INTO storm_sightings (episode_id, target_key, namespace, playbook, alertname, at, "
    "held_by) VALUES (?,?,?,?,?,?,?) ON CONFLICT (episode_id) DO "
)
# Sighted alerts a playbook handles count towards a storm.
_COUNTED = "playbook IS NOT NULL AND at >= ?"


def _rows(sightings: Sequence[Sighting], at: str, held_by: int | None) -> list[tuple[Any, ...]]:
    return [
        (s.episode_id, s.target_key, s.namespace, s.playbook, s.alertname, at, held_by)
        for s in sightings
    ]


class StormRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sightings -----------------------------------------------------------------------
    async def add_sightings(self, sightings: Sequence[Sighting]) -> None:
        async with self.db.write() as db:
            await db.executemany(_INSERT + "NOTHING", _rows(sightings, ts(self.db.now()), None))

    async def hold_alerts(
        self, breaker_id: int, sightings: Sequence[Sighting], reason: str
    ) -> None:
        at = ts(self.db.now())
        async with self.db.write() as db:
            await db.executemany(
                _INSERT + "UPDATE SET held_by = excluded.held_by",
                _rows(sightings, at, breaker_id),
            )
            # Handled, and no work when it resolves: nothing ran, nothing to close or report.
            await db.executemany(
                "UPDATE episodes SET firing_handled_at = ?, no_work = 1 WHERE id = ?",
                [(at, s.episode_id) for s in sightings],
            )
            await db.executemany(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at) VALUES (?,?,?,?,?)",
                [
                    (s.episode_id, s.playbook, DecisionKind.STORM_HELD, reason, at)
                    for s in sightings
                ],
            )

    async def mark_refused(self, episode_id: str, kind: str) -> None:
        await self.db.write1(
            "UPDATE storm_sightings SET refused = ? WHERE episode_id = ?", (kind, episode_id)
        )

    async def storm_picture(self, since: datetime, known_since: datetime | None) -> StormPicture:
        rows = await self.db.read(
            "SELECT count(DISTINCT target_key), count(refused) FROM storm_sightings "
            f"WHERE {_COUNTED}",
            (ts(since),),
        )
        alerting, refused = int(rows[0][0]), int(rows[0][1])
        by_ns = await self._by_namespace(since)
        known, known_by_ns = 0, {}
        if known_since is not None:
            known = int(
                await self.db.scalar(
                    f"SELECT count(DISTINCT target_key) FROM storm_sightings WHERE {_COUNTED}",
                    (ts(known_since),),
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
        rows = await self.db.read(
            "SELECT coalesce(namespace, ''), count(DISTINCT target_key) FROM storm_sightings "
            f"WHERE {_COUNTED} GROUP BY 1",
            (ts(since),),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def held_alerts(self, breaker_id: int, limit: int = 10_000) -> list[HeldAlert]:
        rows = await self.db.read(
            "SELECT episode_id, alertname, target_key, namespace, playbook, at "
            "FROM storm_sightings WHERE held_by = ? ORDER BY at, episode_id LIMIT ?",
            (breaker_id, limit),
        )
        return records(HeldAlert, rows)

    async def count_held(self, breaker_id: int) -> int:
        return int(
            await self.db.scalar(
                "SELECT count(*) FROM storm_sightings WHERE held_by = ?", (breaker_id,)
            )
        )

    # -- the breaker ---------------------------------------------------------------------
    async def open_breaker(
        self, reason: str, details: dict[str, Any], expires_at: datetime | None
    ) -> BreakerRecord | None:
        at = self.db.now()
        async with self.db.write() as db:
            if await fetch_one(db, "SELECT 1 FROM breaker WHERE closed_at IS NULL") is not None:
                return None
            cursor = await db.execute(
                "INSERT INTO breaker (opened_at, reason, details, expires_at) VALUES (?,?,?,?)",
                (ts(at), reason, dumps(details), ts(expires_at) if expires_at else None),
            )
            assert cursor.lastrowid is not None
            await write_audit(
                db, "storm-breaker", "breaker_open", "breaker", reason, details, at=ts(at)
            )
            return BreakerRecord(cursor.lastrowid, at, reason, details, expires_at)

    async def current_breaker(self) -> BreakerRecord | None:
        rows = await self.db.read("SELECT * FROM breaker WHERE closed_at IS NULL ORDER BY id")
        return record(BreakerRecord, rows[0]) if rows else None

    async def close_breaker(
        self, *, who: str, reason: str, at: datetime | None = None
    ) -> BreakerRecord | None:
        closed = ts(at or self.db.now())
        async with self.db.write() as db:
            row = await fetch_one(
                db,
                "UPDATE breaker SET closed_at = ?, closed_by = ?, close_reason = ? "
                "WHERE closed_at IS NULL RETURNING *",
                (closed, who, reason),
            )
            if row is None:
                return None
            await write_audit(db, who, "breaker_close", "breaker", reason, at=ts(self.db.now()))
            return record(BreakerRecord, row)

    async def last_breaker_close(self) -> datetime | None:
        return parse_ts(await self.db.scalar("SELECT max(closed_at) FROM breaker"))

    async def latest_breaker(self) -> BreakerRecord | None:
        rows = await self.db.read("SELECT * FROM breaker ORDER BY id DESC LIMIT 1")
        return record(BreakerRecord, rows[0]) if rows else None

    async def get_breaker(self, breaker_id: int) -> BreakerRecord | None:
        rows = await self.db.read("SELECT * FROM breaker WHERE id = ?", (breaker_id,))
        return record(BreakerRecord, rows[0]) if rows else None
