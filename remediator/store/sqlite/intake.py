"""Intake: the journal the webhook waits for, the digest of its slices into episodes, and the
work the digest leaves for the dispatcher.

The digester's rules are the engine's (engine/intake/digest_plan.py); here a slice's plan is written
in one transaction with the mark that the slice is digested, so a crash digests it again,
never twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiosqlite

from remediator.alertmanager import Alert
from remediator.store.base import StoreUnavailable
from remediator.store.codec import dumps, parse_ts, ts
from remediator.store.journal import Journal
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
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.replicas import FENCED

_MAX_PARAMS = 900  # below SQLite's historic limit of 999 host parameters


class IntakeRepository:
    def __init__(self, db: Database, journal: Journal, resends: Resends) -> None:
        self.db = db
        self.journal_file = journal
        self.resends = resends
        self.digested = 0  # journal sequence number digested through (committed)

    async def open(self) -> None:
        rows = await self.db.read("SELECT seq FROM digest_state WHERE name = 'journal'")
        self.digested = int(rows[0][0]) if rows else 0
        await self.journal_file.open(self.digested)

    async def close(self) -> None:
        """Write the re-sends counted in memory."""
        if not self.resends.unsaved or not self.db.is_open:
            return
        counts, self.resends.unsaved = self.resends.unsaved, {}
        with contextlib.suppress(StoreUnavailable):
            async with self.db.write() as db:
                await db.executemany(
                    "UPDATE episodes SET notifications = notifications + ? WHERE id = ?",
                    [(n, eid) for eid, n in counts.items()],
                )

    async def journal(self, batch: Sequence[IncomingNotification]) -> list[str]:
        seqs = await self.journal_file.append([(i.received_at, i.body) for i in batch])
        return [_notification_id(seq) for seq in seqs]

    async def undigested(self, limit: int) -> list[JournalEntry]:
        rows = await self.journal_file.read(self.digested, limit)
        return [JournalEntry(_notification_id(seq), seq, at, body) for seq, at, body in rows]

    async def count_undigested(self) -> int:
        return await self.journal_file.count(self.digested)

    @asynccontextmanager
    async def digesting(self, episode_ids: Sequence[str]) -> AsyncIterator[DigestWork]:
        async with self.db.write() as db:
            work = _Digest(self, db, await _statuses(db, episode_ids))
            yield work
        if work.through:
            self.digested = max(self.digested, work.through)
            await self.journal_file.forget(self.digested)

    async def pending_work(self, kind: WorkKind, limit: int, after: str = "") -> list[WorkItem]:
        column = "firing_handled_at" if kind is WorkKind.FIRING else "resolved_handled_at"
        rows = await self.db.read(
            f"SELECT *, ? AS work FROM episodes WHERE status = ? AND {column} IS NULL "
            "AND id > ? ORDER BY id LIMIT ?",
            (kind.value, kind.value, after, limit),
        )
        items = []
        for row in rows:
            alert = Alert(
                status=row["status"],
                labels=json.loads(row["labels"]),
                annotations=json.loads(row["annotations"]),
                startsAt=datetime.fromisoformat(row["starts_at"]),
                endsAt=parse_ts(row["resolved_at"]),
                generatorURL=row["generator_url"],
                fingerprint=row["fingerprint"],
            )
            items.append(WorkItem(WorkKind(row["work"]), row["id"], alert))
        return items

    async def mark_handled(self, item: WorkItem) -> None:
        column = "firing_handled_at" if item.kind is WorkKind.FIRING else "resolved_handled_at"
        # Its claim (`claim_work`) ends with it; a fenced replica's marks nothing (what it
        # was doing is reconciled and dispatched again).
        await self.db.write1(
            f"UPDATE episodes SET {column} = ?, dispatch_owner = NULL WHERE id = ? "
            f"AND (dispatch_owner IS NULL OR dispatch_owner = ?) AND NOT {FENCED}",
            (ts(self.db.now()), item.episode_id, self.db.replica, self.db.replica),
        )

    async def prune(self, older_than: datetime) -> int:
        _lastrowid, rowcount = await self.db.write1(
            "DELETE FROM notifications WHERE received_at < ?", (ts(older_than),)
        )
        return rowcount


def _notification_id(seq: int) -> str:
    return f"n-{seq:012d}"


async def _statuses(
    db: aiosqlite.Connection, ids: Sequence[str]
) -> dict[str, tuple[str, str, int]]:
    """(status, last_seen, no_work) of the known episodes among `ids`."""
    found: dict[str, tuple[str, str, int]] = {}
    for start in range(0, len(ids), _MAX_PARAMS):
        chunk = ids[start : start + _MAX_PARAMS]
        marks = ",".join("?" * len(chunk))
        async with db.execute(
            f"SELECT id, status, last_seen, no_work FROM episodes WHERE id IN ({marks})", chunk
        ) as cursor:
            for row in await cursor.fetchall():
                found[row[0]] = (row[1], row[2], row[3])
    return found


class _Digest:
    """One slice's transaction: the engine reads `known`, plans, and applies here."""

    def __init__(
        self,
        intake: IntakeRepository,
        db: aiosqlite.Connection,
        found: dict[str, tuple[str, str, int]],
    ) -> None:
        self._intake = intake
        self._db = db
        self._last_seen = {eid: last_seen for eid, (_, last_seen, _) in found.items()}
        self.known: Mapping[str, EpisodeState] = {
            eid: EpisodeState(status, bool(no_work)) for eid, (status, _, no_work) in found.items()
        }
        self.through = 0  # the journal's sequence number this slice digests through

    async def apply(self, plan: DigestPlan) -> None:
        now = self._intake.db.now()
        db, at = self._db, ts(now)
        unsaved = self._intake.resends.unsaved
        last_seen = self._last_seen
        for eid in [e.id for e in plan.new] + [e.id for e in plan.resolved]:
            last_seen[eid] = at
        # A re-send touches the episode row at most once per RESEND_TOUCH: re-sends come in
        # floods (every group, every peer) and each touch is a random page. The rest is
        # counted in memory (reads add it; the next touch, the resolve or close write it).
        stale = ts(now - RESEND_TOUCH)
        resends: list[tuple[Any, ...]] = []
        for resent in plan.resent:
            eid = resent.id
            if last_seen.get(eid, at) < stale or resent.truncated:
                resends.append((at, 1 + unsaved.pop(eid, 0), int(resent.truncated), eid))
                last_seen[eid] = at
            else:
                unsaved[eid] = unsaved.get(eid, 0) + 1
        if plan.new:
            await db.executemany(
                "INSERT INTO episodes (id, fingerprint, starts_at, alertname, namespace, "
                "status, labels, annotations, generator_url, first_seen, last_seen, "
                "resolved_at, truncated, first_notification, firing_handled_at, "
                "resolved_handled_at, no_work) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (id) DO NOTHING",
                [_episode_row(e, at) for e in plan.new],
            )
        if plan.decisions:
            await db.executemany(
                "INSERT INTO decisions (episode_id, playbook, kind, reason, at) "
                "VALUES (?, NULL, ?, ?, ?)",
                [(eid, kind, reason, at) for eid, kind, reason in plan.decisions],
            )
        if resends:
            await db.executemany(
                "UPDATE episodes SET last_seen = ?, notifications = notifications + ?, "
                "truncated = max(truncated, ?) WHERE id = ?",
                resends,
            )
        if plan.resolved:
            await db.executemany(
                "UPDATE episodes SET status = 'resolved', resolved_at = ?, last_seen = ?, "
                "notifications = notifications + ?, truncated = max(truncated, ?), "
                "resolved_handled_at = ? WHERE id = ?",
                [
                    (
                        ts(e.resolved_at),
                        at,
                        1 + unsaved.pop(e.id, 0),
                        int(e.truncated),
                        at if e.handled else None,
                        e.id,
                    )
                    for e in plan.resolved
                ],
            )
        # The body is kept for audit, compressed in SQLite's thread (zlib lets go of the
        # GIL there), not on the event loop.
        await db.executemany(
            "INSERT INTO notifications (id, received_at, group_key, receiver, status, "
            "alerts, truncated_alerts, new_episodes, digested_at, body) "
            "VALUES (?,?,?,?,?,?,?,?,?,zlib_compress(?))",
            [
                (
                    n.entry.id,
                    ts(n.entry.received_at),
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
        self.through = max(n.entry.seq for n in plan.notifications)
        await db.execute("UPDATE digest_state SET seq = ? WHERE name = 'journal'", (self.through,))


def _episode_row(episode: NewEpisode, at: str) -> tuple[Any, ...]:
    alert, firing = episode.alert, episode.resolved_at is None
    labels = alert["labels"]
    return (
        episode.id,
        episode.fingerprint,
        episode.starts_at,
        labels.get("alertname", ""),
        labels.get("namespace"),
        alert["status"],
        dumps(labels),
        dumps(alert.get("annotations", {})),
        alert.get("generatorURL", ""),
        at,
        at,
        None if episode.resolved_at is None else ts(episode.resolved_at),
        int(episode.truncated),
        episode.notification_id,
        None if episode.wanted else at,  # nothing to dispatch: no playbook, or resolved on arrival
        None if firing else at,
        int(firing and not episode.wanted),
    )
