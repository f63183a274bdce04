"""Episodes as the admin API and the engine read them, and the synthetic episode of a run by
hand (intake.py writes the ones that arrive)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.alertmanager import Alert
from remediator.store.codec import dumps
from remediator.store.postgres.database import Database
from remediator.store.postgres.governance import write_audit
from remediator.store.postgres.rows import record
from remediator.store.records import DecisionKind, EpisodeRecord
from remediator.store.resends import Resends


class EpisodeRepository:
    def __init__(self, db: Database, resends: Resends) -> None:
        self.db = db
        self.resends = resends

    async def get_episode(self, episode_id: str) -> EpisodeRecord | None:
        row = await self.db.fetchrow("SELECT * FROM episodes WHERE id = $1", episode_id)
        return self.resends.counted(record(EpisodeRecord, row)) if row else None

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
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("e.status = ${}", status),
            ("e.alertname = ${}", alertname),
            ("e.namespace = ${}", namespace),
            (
                "EXISTS (SELECT 1 FROM runs r WHERE r.episode_id = e.id AND r.playbook = ${})",
                playbook,
            ),
            ("e.first_seen >= ${}", since),
        ):
            if value is not None:
                params.append(value)
                where.append(clause.format(len(params)))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        params.append(limit)
        rows = await self.db.fetch(
            f"SELECT e.* FROM episodes e {clause} ORDER BY e.first_seen DESC LIMIT ${len(params)}",
            *params,
        )
        return [self.resends.counted(record(EpisodeRecord, row)) for row in rows]

    async def count_episodes(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM episodes"))

    async def record_manual_episode(
        self, alert: Alert, *, who: str, reason: str, details: dict[str, Any]
    ) -> str:
        """A synthetic episode for a run by hand: recorded as handled (never dispatched), with
        a decision and an audit row naming who asked and why."""
        at = self.db.now()
        eid = alert.episode_id
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO episodes (id, fingerprint, starts_at, alertname, namespace, status, "
                "labels, annotations, generator_url, first_seen, last_seen, resolved_at, "
                "truncated, first_notification, firing_handled_at, resolved_handled_at) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,NULL,false,'manual',$12,NULL)",
                eid,
                alert.fingerprint_or_computed,
                alert.startsAt,
                alert.alertname,
                alert.labels.get("namespace"),
                "firing",
                dumps(alert.labels),
                dumps(alert.annotations),
                alert.generatorURL,
                at,
                at,
                at,
            )
            await conn.execute(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at, run_id) "
                "VALUES ($1,$2,$3,$4,$5,NULL)",
                eid,
                details.get("playbook"),
                DecisionKind.MATCHED,
                f"run by hand by {who}: {reason}",
                at,
            )
            await write_audit(conn, who, "run", eid, reason, details, at=at)
        return eid
