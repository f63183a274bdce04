"""Intake on PostgreSQL: the journal is a table, so 2xx means committed in PostgreSQL (no
local file that dies with the pod), and any replica may digest what any other received.

`journal` inserts a batch into `intake_journal` in one statement. A digest transaction first
locks the `digest_state` row (`SELECT ... FOR UPDATE`: digesters of every replica take turns,
and a row lock lasts only as long as its transaction, so it is safe behind PgBouncer in
transaction mode), writes the slice's plan, and deletes the slice's journal rows. The rows
present are the truth of what is undigested: if one of the slice's rows is gone, another
replica digested it since it was read, and the slice raises `SliceTaken` (nothing written; the
digester reads again at once). Not `seq > digest_state.seq`: sequence numbers are taken before
commit, so a batch may commit after a later-numbered one was already digested.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from remediator.alertmanager import Alert
from remediator.store.base import SliceTaken, StoreUnavailable
from remediator.store.codec import dumps
from remediator.store.postgres.database import Database, rowcount
from remediator.store.postgres.replicas import fenced
from remediator.store.protocols import DigestWork
from remediator.store.records import (
    DigestPlan,
    EpisodeState,
    IncomingNotification,
    JournalEntry,
    NewEpisode,
    WorkItem,
    WorkKind,
)
from remediator.store.resends import RESEND_TOUCH, Resends


class IntakeRepository:
    def __init__(self, db: Database, resends: Resends) -> None:
        self.db = db
        self.resends = resends

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        """Write the re-sends counted in memory."""
        if not self.resends.unsaved or not self.db.is_open:
            return
        counts, self.resends.unsaved = self.resends.unsaved, {}
        with contextlib.suppress(StoreUnavailable):
            await self.db.executemany(
                "UPDATE episodes SET notifications = notifications + $1 WHERE id = $2",
                [(n, eid) for eid, n in counts.items()],
            )

    async def journal(self, batch: Sequence[IncomingNotification]) -> list[str]:
        rows = await self.db.fetch(
            "INSERT INTO intake_journal (received_at, body) "
            "SELECT * FROM unnest($1::timestamptz[], $2::bytea[]) RETURNING seq",
            [i.received_at for i in batch],
            [i.body for i in batch],
        )
        # The sequence is drawn in the order of the arrays: the n-th smallest is the n-th.
        return [_notification_id(seq) for seq in sorted(row[0] for row in rows)]

    async def undigested(self, limit: int) -> list[JournalEntry]:
        rows = await self.db.fetch(
            "SELECT seq, received_at, body FROM intake_journal ORDER BY seq LIMIT $1", limit
        )
        return [JournalEntry(_notification_id(seq), seq, at, bytes(body)) for seq, at, body in rows]

    async def count_undigested(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM intake_journal"))

    @asynccontextmanager
    async def digesting(self, episode_ids: Sequence[str]) -> AsyncIterator[DigestWork]:
        async with self.db.transaction() as conn:
            await conn.execute("SELECT seq FROM digest_state WHERE name = 'journal' FOR UPDATE")
            rows = await conn.fetch(
                "SELECT id, status, last_seen, no_work FROM episodes WHERE id = ANY($1::text[])",
                list(episode_ids),
            )
            yield _Digest(self, conn, {r[0]: (r[1], r[2], r[3]) for r in rows})

    async def pending_work(self, kind: WorkKind, limit: int, after: str = "") -> list[WorkItem]:
        column = "firing_handled_at" if kind is WorkKind.FIRING else "resolved_handled_at"
        rows = await self.db.fetch(
            f"SELECT * FROM episodes WHERE status = $1 AND {column} IS NULL "
            "AND id > $2 ORDER BY id LIMIT $3",
            kind.value,
            after,
            limit,
        )
        return [work_item(kind, row) for row in rows]

    async def mark_handled(self, item: WorkItem) -> None:
        column = "firing_handled_at" if item.kind is WorkKind.FIRING else "resolved_handled_at"
        # Its claim (`claim_work`) ends with it; a fenced replica's marks nothing (what it
        # was doing is reconciled and dispatched again).
        await self.db.execute(
            f"UPDATE episodes SET {column} = $1, dispatch_owner = NULL WHERE id = $2 "
            f"AND (dispatch_owner IS NULL OR dispatch_owner = $3) AND NOT {fenced(3)}",
            self.db.now(),
            item.episode_id,
            self.db.replica,
        )

    async def prune(self, older_than: datetime) -> int:
        status = await self.db.execute(
            "DELETE FROM notifications WHERE received_at < $1", older_than
        )
        return rowcount(status)


def work_item(kind: WorkKind, row: Any) -> WorkItem:
    """The dispatch work of an episode row."""
    alert = Alert(
        status=row["status"],
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        startsAt=row["starts_at"],
        endsAt=row["resolved_at"],
        generatorURL=row["generator_url"],
        fingerprint=row["fingerprint"],
    )
    return WorkItem(kind, row["id"], alert)


def _notification_id(seq: int) -> str:
    return f"n-{seq:012d}"


class _Digest:
    """One slice's transaction: the engine reads `known`, plans, and applies here."""

    def __init__(
        self,
        intake: IntakeRepository,
        conn: asyncpg.Connection,
        found: dict[str, tuple[str, datetime, bool]],
    ) -> None:
        self._intake = intake
        self._conn = conn
        self._last_seen = {eid: last_seen for eid, (_, last_seen, _) in found.items()}
        self.known: Mapping[str, EpisodeState] = {
            eid: EpisodeState(status, bool(no_work)) for eid, (status, _, no_work) in found.items()
        }

    async def apply(self, plan: DigestPlan) -> None:
        conn, at = self._conn, self._intake.db.now()
        seqs = [n.entry.seq for n in plan.notifications]
        # The slice's journal rows go first: one missing was digested by another replica.
        taken = rowcount(
            await conn.execute("DELETE FROM intake_journal WHERE seq = ANY($1::bigint[])", seqs)
        )
        if taken != len(seqs):
            raise SliceTaken(
                f"{len(seqs) - taken} of {len(seqs)} notifications were digested by another "
                "replica meanwhile"
            )
        unsaved = self._intake.resends.unsaved
        last_seen = self._last_seen
        for eid in [e.id for e in plan.new] + [e.id for e in plan.resolved]:
            last_seen[eid] = at
        # A re-send touches the episode row at most once per RESEND_TOUCH (store/resends.py).
        stale = at - RESEND_TOUCH
        resends: list[tuple[Any, ...]] = []
        for resent in plan.resent:
            eid = resent.id
            if last_seen.get(eid, at) < stale or resent.truncated:
                resends.append((at, 1 + unsaved.pop(eid, 0), resent.truncated, eid))
                last_seen[eid] = at
            else:
                unsaved[eid] = unsaved.get(eid, 0) + 1
        if plan.new:
            await conn.executemany(
                "INSERT INTO episodes (id, fingerprint, starts_at, alertname, namespace, "
                "status, labels, annotations, generator_url, first_seen, last_seen, "
                "resolved_at, truncated, first_notification, firing_handled_at, "
                "resolved_handled_at, no_work) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) "
                "ON CONFLICT (id) DO NOTHING",
                [_episode_row(e, at) for e in plan.new],
            )
        if plan.decisions:
            await conn.executemany(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at) "
                "VALUES ($1, NULL, $2, $3, $4)",
                [(eid, kind, reason, at) for eid, kind, reason in plan.decisions],
            )
        if resends:
            await conn.executemany(
                "UPDATE episodes SET last_seen = $1, notifications = notifications + $2, "
                "truncated = truncated OR $3 WHERE id = $4",
                resends,
            )
        if plan.resolved:
            await conn.executemany(
                "UPDATE episodes SET status = 'resolved', resolved_at = $1, last_seen = $2, "
                "notifications = notifications + $3, truncated = truncated OR $4, "
                "resolved_handled_at = $5 WHERE id = $6",
                [
                    (
                        e.resolved_at,
                        at,
                        1 + unsaved.pop(e.id, 0),
                        e.truncated,
                        at if e.handled else None,
                        e.id,
                    )
                    for e in plan.resolved
                ],
            )
        await conn.executemany(
            "INSERT INTO notifications (id, received_at, group_key, receiver, status, "
            "alerts, truncated_alerts, new_episodes, digested_at, body) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            [
                (
                    n.entry.id,
                    n.entry.received_at,
                    n.group_key,
                    n.receiver,
                    n.status,
                    n.alerts,
                    n.truncated_alerts,
                    n.new_episodes,
                    at,
                    n.entry.body,
                )
                for n in plan.notifications
            ],
        )
        await conn.execute(
            "UPDATE digest_state SET seq = greatest(seq, $1) WHERE name = 'journal'", max(seqs)
        )


def _episode_row(episode: NewEpisode, at: datetime) -> tuple[Any, ...]:
    alert, firing = episode.alert, episode.resolved_at is None
    labels = alert["labels"]
    return (
        episode.id,
        episode.fingerprint,
        datetime.fromisoformat(episode.starts_at),
        labels.get("alertname", ""),
        labels.get("namespace"),
        alert["status"],
        dumps(labels),
        dumps(alert.get("annotations", {})),
        alert.get("generatorURL", ""),
        at,
        at,
        episode.resolved_at,
        episode.truncated,
        episode.notification_id,
        None if episode.wanted else at,  # nothing to dispatch: no playbook, or resolved on arrival
        None if firing else at,
        firing and not episode.wanted,
    )
