"""Episodes as the admin API and the engine read them, and the synthetic episode of a run by
hand (intake.py writes the ones that arrive)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.alertmanager import Alert
from remediator.store.codec import dumps, ts
from remediator.store.records import DecisionKind, EpisodeRecord
from remediator.store.resends import Resends
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.governance import write_audit
from remediator.store.sqlite.rows import record


class EpisodeRepository:
    def __init__(self, db: Database, resends: Resends) -> None:
        self.db = db
        self.resends = resends

    async def get_episode(self, episode_id: str) -> EpisodeRecord | None:
        rows = await self.db.read("SELECT * FROM episodes WHERE id = ?", (episode_id,))
        return self.resends.counted(record(EpisodeRecord, rows[0])) if rows else None

    async def list_episodes(
        self,
        *,
        status: str | None = None,
        alertname: str | None = None,
        namespace: str | None = None,
        playbook: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[EpisodeRecord]:
        where, params = [], []
        for clause, value in (
            ("e.status = ?", status),
            ("e.alertname = ?", alertname),
            ("e.namespace = ?", namespace),
            (
                "EXISTS (SELECT 1 FROM runs r WHERE r.episode_id = e.id AND r.playbook = ?)",
                playbook,
            ),
            ("e.first_seen >= ?", ts(since) if since is not None else None),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.read(
            f"SELECT e.* FROM episodes e {clause} ORDER BY e.first_seen DESC LIMIT ?",
            [*params, limit],
        )
        return [self.resends.counted(record(EpisodeRecord, row)) for row in rows]

    async def count_episodes(self) -> int:
        return int(await self.db.scalar("SELECT count(*) FROM episodes"))

    async def record_manual_episode(
        self, alert: Alert, *, who: str, reason: str, details: dict[str, Any]
    ) -> str:
        """A synthetic episode for a run by hand: recorded as handled (never dispatched), with
        a decision and an audit row naming who asked and why."""
        at = ts(self.db.now())
        eid = alert.episode_id
        async with self.db.write() as db:
            await db.execute(
                "INSERT INTO episodes (id, fingerprint, starts_at, alertname, namespace, status, "
                "labels, annotations, generator_url, first_seen, last_seen, resolved_at, "
                "truncated, first_notification, firing_handled_at, resolved_handled_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,NULL,0,'manual',?,NULL)",
                (
                    eid,
                    alert.fingerprint_or_computed,
                    ts(alert.startsAt),
                    alert.alertname,
                    alert.labels.get("namespace"),
                    "firing",
                    dumps(alert.labels),
                    dumps(alert.annotations),
                    alert.generatorURL,
                    at,
                    at,
                    at,
                ),
            )
            await db.execute(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
                "VALUES (?,?,?,?,?,NULL)",
                (
                    eid,
                    details.get("playbook"),
                    DecisionKind.MATCHED,
                    f"run by hand by {who}: {reason}",
                    at,
                ),
            )
            await write_audit(db, who, "run", eid, reason, details, at=at)
        return eid
