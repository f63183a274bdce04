"""Approve mode: a dry run waits for a human, durably, and escalates when nobody decides.

The approve-mode run has recorded its `would` actions, exactly the calls an approval allows.
`requested` stores a pending approval with an expiry and arms an `approval_timeout` timer.
`approve` runs the same run again in auto mode under every guard, and only the approved calls
may pass (guards/approval.py); `deny` ends it. A decision is taken once (a conditional write),
so two operators, or an operator and the timeout, cannot both win.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from remediator.alertmanager import Alert
from remediator.clock import Clock
from remediator.config import ApprovalSettings, Mode
from remediator.engine.guards.approval import ApprovedCalls, call_key
from remediator.engine.hooks import Escalator
from remediator.engine.runs.pipeline import Pipeline
from remediator.logs import get_logger
from remediator.playbook import RunInfo
from remediator.store import Store
from remediator.store.records import (
    ActionState,
    ApprovalRecord,
    ApprovalState,
    DecisionKind,
    RunState,
    TimerRecord,
    WorkItem,
    WorkKind,
)

APPROVAL_TIMEOUT = "approval_timeout"  # timer kind


class ApprovalError(Exception):
    """The approval cannot be decided (unknown run, already decided, expired, resolved)."""


class Approvals:
    def __init__(
        self,
        *,
        store: Store,
        settings: ApprovalSettings,
        escalator: Escalator,
        approved: ApprovedCalls,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._escalator = escalator
        self._approved = approved
        # Told of every decision, whoever took it (Slack replaces the buttons with it).
        self.listeners: list[Callable[[ApprovalRecord], Awaitable[None]]] = []
        self._log = get_logger(component="approvals")

    async def requested(self, run: RunInfo) -> None:
        expires_at = self._clock.now() + timedelta(seconds=self._settings.timeout_seconds)
        await self._store.add_approval(
            run.run_id, run.episode_id, run.playbook, run.target.key, expires_at
        )
        await self._store.add_timer(
            APPROVAL_TIMEOUT,
            run.episode_id,
            due_at=expires_at,
            run_id=run.run_id,
            playbook=run.playbook,
        )
        self._log.info("waiting for approval", run=run.run_id, expires_at=expires_at.isoformat())

    async def on_timeout(self, timer: TimerRecord) -> None:
        assert timer.run_id is not None
        reason = f"no decision within {self._settings.timeout_seconds:g} s"
        decided = await self._store.decide_approval(
            timer.run_id, ApprovalState.EXPIRED, who="timeout", reason=reason
        )
        if decided is None:
            return  # decided meanwhile
        await self._tell(decided)
        await self._end(decided, f"approval expired: {reason}")
        await self._escalator.escalate(
            decided.episode_id,
            decided.run_id,
            f"approval expired: {reason}; nothing was changed",
            {
                "kind": "approval_timeout",
                "playbook": decided.playbook,
                "target": decided.target_key,
            },
        )

    async def approve(self, pipeline: Pipeline, run_id: int, *, who: str, reason: str) -> RunState:
        """Run the approved run for real; returns how it ended (acted, refused, ...)."""
        pending = await self._pending(run_id)
        episode = await self._store.get_episode(pending.episode_id)
        spec = pipeline.registry.get(pending.playbook)
        if episode is None or episode.status != "firing" or spec is None:
            why = "the alert resolved" if episode is not None else "the episode is gone"
            why = why if spec is not None else f"playbook {pending.playbook} is not loaded"
            await self.deny(run_id, who=who, reason=f"cannot approve: {why}")
            raise ApprovalError(f"run {run_id} cannot be approved: {why}")
        calls = [
            call_key(a.verb, a.resource, a.object)
            for a in await self._store.actions_for(episode.id)
            if a.run_id == run_id and a.state == ActionState.WOULD
        ]
        decided = await self._store.decide_approval(
            run_id, ApprovalState.APPROVED, who=who, reason=reason
        )
        if decided is None:
            raise ApprovalError(f"run {run_id} was decided meanwhile")
        await self._tell(decided)
        await self._store.cancel_timers(episode.id, APPROVAL_TIMEOUT)
        await self._store.record_decision(
            episode.id, spec.name, DecisionKind.MATCHED, f"approved by {who}: {reason}", run_id
        )
        target = spec.target(episode.labels, pipeline.scope)
        alert = Alert(
            status="firing",
            labels=episode.labels,
            annotations=episode.annotations,
            startsAt=episode.starts_at,
            generatorURL=episode.generator_url,
            fingerprint=episode.fingerprint,
        )
        log = self._log.bind(episode=episode.id, approved_by=who)
        self._approved.expect(run_id, calls)
        try:
            return await pipeline.run_playbook(
                spec,
                target,
                episode,
                WorkItem(WorkKind.FIRING, episode.id, alert),
                log,
                mode=Mode.AUTO,
                run_id=run_id,
            )
        finally:
            self._approved.forget(run_id)

    async def deny(self, run_id: int, *, who: str, reason: str) -> ApprovalRecord:
        await self._pending(run_id)
        decided = await self._store.decide_approval(
            run_id, ApprovalState.DENIED, who=who, reason=reason
        )
        if decided is None:
            raise ApprovalError(f"run {run_id} was decided meanwhile")
        await self._tell(decided)
        await self._store.cancel_timers(decided.episode_id, APPROVAL_TIMEOUT)
        await self._end(decided, f"approval denied by {who}: {reason}")
        return decided

    async def _tell(self, decided: ApprovalRecord) -> None:
        for listener in self.listeners:
            try:
                await listener(decided)
            except Exception:  # the decision stands whatever a listener does
                self._log.exception("approval listener failed", run=decided.run_id)

    async def _pending(self, run_id: int) -> ApprovalRecord:
        approval = await self._store.get_approval(run_id)
        if approval is None:
            raise ApprovalError(f"run {run_id} is not waiting for an approval")
        if approval.state != ApprovalState.PENDING:
            raise ApprovalError(f"run {run_id} was already {approval.state}")
        if approval.expires_at <= self._clock.now():
            raise ApprovalError(f"the approval of run {run_id} expired")
        return approval

    async def _end(self, approval: ApprovalRecord, why: str) -> None:
        """The run will never act: mark it refused (keeping its evidence) and say why."""
        runs = await self._store.runs_for(approval.episode_id)
        evidence = next((r.evidence for r in runs if r.id == approval.run_id), {})
        await self._store.finish_run(
            approval.run_id, RunState.REFUSED, error=why, evidence=evidence
        )
        await self._store.record_decision(
            approval.episode_id, approval.playbook, DecisionKind.REFUSED, why, approval.run_id
        )
