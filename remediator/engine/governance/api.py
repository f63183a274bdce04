"""The operator's levers, one engine-level API for the admin HTTP surface and the CLI.

Pause and resume (kill switches at three scopes, with reason and optional expiry), the storm
breaker's status and closing it, pending approvals and their decisions, playbook mode
overrides, runs by hand, re-sent reports, dead letters and their re-send, the audit log. Every
mutation names who and why; the store writes the audit row in the same transaction.
"""

from __future__ import annotations

from datetime import timedelta

from remediator.clock import Clock
from remediator.config import KillSwitchSettings, Mode
from remediator.engine.delivery.outbox import Outbox
from remediator.engine.governance.approvals import ApprovalError, Approvals
from remediator.engine.governance.manual import ManualRun, run_by_hand
from remediator.engine.guards.storm import StormBreaker
from remediator.engine.hooks import Reporter
from remediator.engine.runs.pipeline import Pipeline
from remediator.store import Store
from remediator.store.records import (
    ApprovalRecord,
    ApprovalState,
    AuditRecord,
    BreakerRecord,
    IncidentRecord,
    KillSwitchRecord,
    OutboxItem,
    RunState,
    Scope,
)
from remediator.store.storm_records import HeldAlert


class GovernanceError(ValueError):
    """An operator request that cannot be carried out as asked (the message says why)."""


def _required(value: str, what: str) -> str:
    if not value or not value.strip():
        raise GovernanceError(f"{what} is required")
    return value.strip()


class Governance:
    def __init__(
        self,
        *,
        store: Store,
        pipeline: Pipeline,
        breaker: StormBreaker,
        approvals: Approvals,
        settings: KillSwitchSettings,
        reporter: Reporter | None = None,
        outbox: Outbox | None = None,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._reporter = reporter
        self._outbox = outbox
        self._pipeline = pipeline
        self._breaker = breaker
        self._approvals = approvals
        self._settings = settings

    # -- kill switches -------------------------------------------------------------------
    async def pause(
        self,
        scope: Scope | str,
        key: str = "",
        *,
        who: str,
        reason: str,
        expires_in: timedelta | None = None,
    ) -> KillSwitchRecord:
        """Stop remediation: everything (GLOBAL), one playbook (its name) or one target (its
        key, `Kind/namespace/name`). Without `expires_in`, the configured default applies
        (`guards.kill_switch.default_expiry_seconds`; unset: until resumed)."""
        try:
            scope = Scope(scope)
        except ValueError:
            raise GovernanceError(f"unknown scope {scope!r} (global, playbook, target)") from None
        key = key.strip()
        if scope is Scope.GLOBAL and key:
            raise GovernanceError("a global pause takes no key")
        if scope is Scope.PLAYBOOK and self._pipeline.registry.get(key) is None:
            raise GovernanceError(f"no playbook named {key!r} is loaded")
        if scope is Scope.TARGET and len([p for p in key.split("/") if p]) not in (2, 3):
            raise GovernanceError(f"{key!r} is not a target key (Kind/namespace/name)")
        if expires_in is None and self._settings.default_expiry_seconds is not None:
            expires_in = timedelta(seconds=self._settings.default_expiry_seconds)
        if expires_in is not None and expires_in <= timedelta(0):
            raise GovernanceError("expires_in must be positive")
        return await self._store.add_kill_switch(
            scope,
            key,
            reason=_required(reason, "reason"),
            who=_required(who, "who"),
            expires_at=self._clock.now() + expires_in if expires_in else None,
        )

    async def resume(self, switch_id: int, *, who: str, reason: str) -> KillSwitchRecord:
        lifted = await self._store.lift_kill_switch(
            switch_id, who=_required(who, "who"), reason=_required(reason, "reason")
        )
        if lifted is None:
            raise GovernanceError(f"kill switch {switch_id} is not active")
        return lifted

    async def switches(self, *, include_inactive: bool = False) -> list[KillSwitchRecord]:
        """Active switches; with `include_inactive`, every switch ever set (lifted, expired)."""
        if include_inactive:
            return await self._store.kill_switches()
        return await self._store.kill_switches(at=self._clock.now())

    # -- the storm breaker ---------------------------------------------------------------
    async def breaker(self) -> BreakerRecord | None:
        """The open breaker, or None when remediation may proceed."""
        return await self._breaker.status()

    async def storm(self, limit: int = 1000) -> tuple[BreakerRecord | None, int, list[HeldAlert]]:
        """The open breaker, or else the last one; how many alerts it held, and the first
        `limit` of them."""
        breaker = await self._breaker.status() or await self._store.latest_breaker()
        if breaker is None:
            return None, 0, []
        count = await self._store.count_held(breaker.id)
        return breaker, count, await self._store.held_alerts(breaker.id, limit)

    async def close_breaker(self, *, who: str, reason: str) -> BreakerRecord:
        closed = await self._breaker.close(
            who=_required(who, "who"), reason=_required(reason, "reason")
        )
        if closed is None:
            raise GovernanceError("the storm breaker is not open")
        return closed

    # -- approvals -----------------------------------------------------------------------
    async def pending_approvals(self) -> list[ApprovalRecord]:
        now = self._clock.now()
        pending = await self._store.approvals(state=ApprovalState.PENDING)
        return [a for a in pending if a.expires_at > now]

    async def approve(self, run_id: int, *, who: str, reason: str) -> RunState:
        """Run the pending run for real, under every guard; returns how it ended."""
        who, reason = _required(who, "who"), _required(reason, "reason")
        try:
            return await self._approvals.approve(self._pipeline, run_id, who=who, reason=reason)
        except ApprovalError as exc:
            raise GovernanceError(str(exc)) from exc

    async def deny(self, run_id: int, *, who: str, reason: str) -> ApprovalRecord:
        who, reason = _required(who, "who"), _required(reason, "reason")
        try:
            return await self._approvals.deny(run_id, who=who, reason=reason)
        except ApprovalError as exc:
            raise GovernanceError(str(exc)) from exc

    # -- the record of all of the above --------------------------------------------------
    async def audit(self, limit: int = 100) -> list[AuditRecord]:
        """Newest first: every pause, resume, breaker open/close and approval decision."""
        return await self._store.audit_log(limit)

    # -- playbook modes, runs by hand, reports -------------------------------------------
    async def set_mode(
        self, playbook: str, mode: Mode | str | None, *, who: str, reason: str
    ) -> Mode:
        """Override a playbook's mode (None: back to the configured one); durable, audited,
        and in effect for the next run. Returns the mode now in effect."""
        who, reason = _required(who, "who"), _required(reason, "reason")
        if self._pipeline.registry.get(playbook) is None:
            raise GovernanceError(f"no playbook named {playbook!r} is loaded")
        try:
            chosen = Mode(mode) if mode is not None else None
        except ValueError:
            raise GovernanceError(f"unknown mode {mode!r} (shadow, approve, auto)") from None
        await self._store.set_playbook_mode(
            playbook, chosen.value if chosen else None, who=who, reason=reason
        )
        return self._pipeline.modes.set(playbook, chosen)

    async def load_modes(self) -> None:
        """At start: the overrides operators set before a restart apply again."""
        known = {s.name for s in self._pipeline.registry}
        self._pipeline.modes.load(await self._store.playbook_modes(), known)

    async def refresh_modes(self) -> None:
        """Before showing modes: with replicas sharing the store, an operator may have
        changed an override through another replica (one process: nothing to read)."""
        if self._store.shared:
            await self.load_modes()

    async def run(
        self,
        playbook: str,
        labels: dict[str, str],
        *,
        dry_run: bool = True,
        who: str,
        reason: str,
    ) -> ManualRun:
        """Run a playbook by hand against the target these labels name (dry run unless
        asked); raises ManualRunError for an unknown playbook or a bad target."""
        who, reason = _required(who, "who"), _required(reason, "reason")
        return await run_by_hand(
            self._pipeline, playbook, labels, dry_run=dry_run, who=who, reason=reason
        )

    async def resend_report(self, episode_id: str, *, who: str, reason: str) -> int:
        """Queue the episode's reports again; returns how many."""
        who, reason = _required(who, "who"), _required(reason, "reason")
        if self._reporter is None or not self._reporter.delivers:
            raise GovernanceError("reports are not configured (reports.slack)")
        if await self._store.get_episode(episode_id) is None:
            raise GovernanceError(f"no episode {episode_id!r}")
        count = await self._reporter.resend(episode_id)
        await self._store.record_audit(who, "resend_report", episode_id, reason, {"reports": count})
        return count

    # -- incidents -----------------------------------------------------------------------
    async def clear_incident(self, incident_id: int, *, who: str, reason: str) -> IncidentRecord:
        """End an incident (audited): the next alert for its target may act again. Raises
        LookupError for an unknown incident, GovernanceError for one closed already."""
        who, reason = _required(who, "who"), _required(reason, "reason")
        if await self._store.get_incident(incident_id) is None:
            raise LookupError(f"no incident {incident_id}")
        cleared = await self._pipeline.incidents.clear(incident_id, who=who, reason=reason)
        if cleared is None:
            raise GovernanceError(f"incident {incident_id} is closed already")
        return cleared

    # -- dead letters --------------------------------------------------------------------
    async def dead_letters(self, channel: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Messages a channel refused for good or could not render, newest first."""
        return await self._store.dead_letters(channel, limit)

    async def resend_dead_letter(self, item_id: int, *, who: str, reason: str) -> OutboxItem:
        """Queue a dead letter again, ahead of its channel's queue; raises GovernanceError
        when it is not (or no longer) a dead letter."""
        who, reason = _required(who, "who"), _required(reason, "reason")
        if self._outbox is None:
            raise GovernanceError("no outbox channel is configured")
        item = await self._store.get_outbox_item(item_id)
        if item is None:
            raise LookupError(f"no outbox message {item_id}")
        if item.channel not in self._outbox.channels:
            raise GovernanceError(f"channel {item.channel!r} is no longer configured")
        queued = await self._outbox.resend(item_id, who=who, reason=reason)
        if queued is None:
            raise GovernanceError(f"outbox message {item_id} is not a dead letter")
        return queued
