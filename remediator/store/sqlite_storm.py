"""The storm part of the SQLite store: the sightings the storm breaker decides on, the alerts
an open breaker holds (one row each, written with the digest's cost, no run), and the recent
escalations that aggregated ones are summarised from."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import aiosqlite

from remediator.store.codec import now, ts
from remediator.store.records import BreakerRecord, DecisionKind, EscalationRecord
from remediator.store.sqlite_governance import _breaker
from remediator.store.storm_records import HeldAlert, Sighting, StormPicture


class _Backend(Protocol):
    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


def _rows(sightings: Sequence[Sighting], at: str, held_by: int | None) -> list[tuple[Any, ...]]:
    return [
        (s.episode_id, s.target_key, s.namespace, s.playbook, s.alertname, at, held_by)
        for s in sightings
    ]


_INSERT = (
    "INSERT INTO storm_sightings (episode_id, target_key, namespace, playbook, alertname, at, "
    "held_by) VALUES (?,?,?,?,?,?,?) ON CONFLICT (episode_id) DO "
)


class StormSQL:
    """Mixed into SQLiteStore; see `Store` in base.py for what each method promises."""

    async def add_sightings(self: _Backend, sightings: Sequence[Sighting]) -> None:
        async with self._write() as db:
            await db.executemany(_INSERT + "NOTHING", _rows(sightings, ts(now()), None))

    async def hold_alerts(
        self: _Backend, breaker_id: int, sightings: Sequence[Sighting], reason: str
    ) -> None:
        at = ts(now())
        ids = [(s.episode_id,) for s in sightings]
        async with self._write() as db:
            await db.executemany(
                _INSERT + "UPDATE SET held_by = excluded.held_by",
                _rows(sightings, at, breaker_id),
            )
            # Handled, and no work when it resolves: nothing ran, nothing to close or report.
            await db.executemany(
                "UPDATE episodes SET firing_handled_at = ?, no_work = 1 WHERE id = ?",
                [(at, i) for (i,) in ids],
            )
            await db.executemany(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at) VALUES (?,?,?,?,?)",
                [
                    (s.episode_id, s.playbook, DecisionKind.STORM_HELD.value, reason, at)
                    for s in sightings
                ],
            )

    async def mark_refused(self: _Backend, episode_id: str, kind: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE storm_sightings SET refused = ? WHERE episode_id = ?", (kind, episode_id)
            )

    async def storm_picture(
        self: _Backend, since: datetime, known_since: datetime | None
    ) -> StormPicture:
        counted = "playbook IS NOT NULL AND at >= ?"
        rows = await self._read(
            "SELECT count(DISTINCT target_key), count(refused) FROM storm_sightings "
            f"WHERE {counted}",
            (ts(since),),
        )
        alerting, refused = int(rows[0][0]), int(rows[0][1])
        by_ns = await self._read(
            "SELECT coalesce(namespace, ''), count(DISTINCT target_key) FROM storm_sightings "
            f"WHERE {counted} GROUP BY 1",
            (ts(since),),
        )
        known, known_by_ns = 0, {}
        if known_since is not None:
            rows = await self._read(
                f"SELECT count(DISTINCT target_key) FROM storm_sightings WHERE {counted}",
                (ts(known_since),),
            )
            known = int(rows[0][0])
            known_rows = await self._read(
                "SELECT coalesce(namespace, ''), count(DISTINCT target_key) FROM storm_sightings "
                f"WHERE {counted} GROUP BY 1",
                (ts(known_since),),
            )
            known_by_ns = {str(r[0]): int(r[1]) for r in known_rows}
        return StormPicture(
            alerting=alerting,
            alerting_by_namespace={str(r[0]): int(r[1]) for r in by_ns},
            refused=refused,
            known=known,
            known_by_namespace=known_by_ns,
        )

    async def held_alerts(self: _Backend, breaker_id: int, limit: int = 10_000) -> list[HeldAlert]:
        rows = await self._read(
            "SELECT * FROM storm_sightings WHERE held_by = ? ORDER BY at, episode_id LIMIT ?",
            (breaker_id, limit),
        )
        return [
            HeldAlert(
                r["episode_id"],
                r["alertname"],
                r["target_key"],
                r["namespace"],
                r["playbook"],
                datetime.fromisoformat(r["at"]),
            )
            for r in rows
        ]

    async def latest_breaker(self: _Backend) -> BreakerRecord | None:
        rows = await self._read("SELECT * FROM breaker ORDER BY id DESC LIMIT 1")
        return _breaker(rows[0]) if rows else None

    async def escalations_since(self: _Backend, since: datetime) -> list[EscalationRecord]:
        rows = await self._read(
            "SELECT * FROM escalations WHERE created_at >= ? ORDER BY id", (ts(since),)
        )
        return [
            EscalationRecord(
                r["id"],
                r["episode_id"],
                r["run_id"],
                r["reason"],
                json.loads(r["details"]),
                datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    async def get_breaker(self: _Backend, breaker_id: int) -> BreakerRecord | None:
        rows = await self._read("SELECT * FROM breaker WHERE id = ?", (breaker_id,))
        return _breaker(rows[0]) if rows else None

    async def count_held(self: _Backend, breaker_id: int) -> int:
        rows = await self._read(
            "SELECT count(*) FROM storm_sightings WHERE held_by = ?", (breaker_id,)
        )
        return int(rows[0][0])
