"""The reporting and admin part of the SQLite store: Slack threads, mode overrides, manual runs.

Kept apart from `sqlite.py` (the decision record) like the governance tables. Operator
mutations write their audit row in the same transaction as the change.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import aiosqlite

from remediator.alertmanager import Alert
from remediator.store.codec import dumps, now, ts
from remediator.store.sqlite_governance import _audit


class _Backend(Protocol):
    def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]: ...


class AdminSQL:
    """Mixed into SQLiteStore; see `Store` in base.py for what each method promises."""

    # -- report threads ------------------------------------------------------------------
    async def report_thread(self: _Backend, episode_id: str) -> str | None:
        rows = await self._read("SELECT ts FROM report_threads WHERE episode_id = ?", (episode_id,))
        return str(rows[0]["ts"]) if rows else None

    async def set_report_thread(self: _Backend, episode_id: str, channel: str, ts_: str) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT OR IGNORE INTO report_threads (episode_id, channel, ts, created_at) "
                "VALUES (?,?,?,?)",
                (episode_id, channel, ts_, ts(now())),
            )

    async def outbox_for(self: _Backend, episode_id: str) -> list[dict[str, Any]]:
        rows = await self._read(
            "SELECT id, channel, kind, payload, created_at, attempts, delivered_at, last_error, "
            "dead_at FROM outbox WHERE episode_id = ? ORDER BY id",
            (episode_id,),
        )
        return [
            {
                "id": row["id"],
                "channel": row["channel"],
                "kind": row["kind"],
                "payload": json.loads(row["payload"]),
                "created_at": row["created_at"],
                "attempts": row["attempts"],
                "delivered_at": row["delivered_at"],
                "last_error": row["last_error"],
                "dead_at": row["dead_at"],
            }
            for row in rows
        ]

    # -- playbook mode overrides ---------------------------------------------------------
    async def playbook_modes(self: _Backend) -> dict[str, str]:
        rows = await self._read("SELECT playbook, mode FROM playbook_modes")
        return {row["playbook"]: row["mode"] for row in rows}

    async def set_playbook_mode(
        self: _Backend, playbook: str, mode: str | None, *, who: str, reason: str
    ) -> None:
        async with self._write() as db:
            if mode is None:
                await db.execute("DELETE FROM playbook_modes WHERE playbook = ?", (playbook,))
            else:
                await db.execute(
                    "INSERT INTO playbook_modes (playbook, mode, who, reason, at) "
                    "VALUES (?,?,?,?,?) ON CONFLICT (playbook) DO UPDATE SET mode = "
                    "excluded.mode, who = excluded.who, reason = excluded.reason, at = excluded.at",
                    (playbook, mode, who, reason, ts(now())),
                )
            await _audit(db, who, "set_mode", f"playbook:{playbook}", reason, {"mode": mode})

    # -- manual runs and other audited operator actions ----------------------------------
    async def record_manual_episode(
        self: _Backend, alert: Alert, *, who: str, reason: str, details: dict[str, Any]
    ) -> str:
        """A synthetic episode for a run by hand: recorded as handled (never dispatched), with
        a decision and an audit row naming who asked and why."""
        at = ts(now())
        eid = alert.episode_id
        async with self._write() as db:
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
                (eid, details.get("playbook"), "matched", f"run by hand by {who}: {reason}", at),
            )
            await _audit(db, who, "run", eid, reason, details)
        return eid

    async def record_audit(
        self: _Backend,
        who: str,
        action: str,
        subject: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self._write() as db:
            await _audit(db, who, action, subject, reason, details)
