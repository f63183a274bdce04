"""The seams the pipeline calls out to: guards, escalation, reports, verification.

The pipeline depends on these protocols only; the governance layer (engine/guards, verify.py,
escalate.py, approvals.py) and the reporting layer provide the real implementations, which
`Engine.start` builds from the settings. What stays here is shared by them: the durable record
of an escalation, and no reports until reporting is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from remediator.alertmanager import Alert
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Action, PlaybookSpec, RunInfo
from remediator.store import Store
from remediator.store.records import WorkItem


class Guards(Protocol):
    async def check(self, run: RunInfo, action: Action) -> None:
        """Raise ActionRefused if this action must not happen now. Called before every action,
        in every mode (shadow mode shows what would have been refused)."""
        ...

    def acting(self, run: RunInfo, action: Action) -> AbstractAsyncContextManager[None]:
        """Held while a real (not dry-run) call executes, entered right after a passed check:
        what a cap on actions in flight counts."""
        ...

    async def allowance(self, run: RunInfo, key: str) -> int | None:
        """How many more of a counted change (`changes.PODS`, `changes.SESSIONS`) the run may
        take now, the smallest any guard allows; None when none bounds it."""
        ...


class ActionHooks(Protocol):
    """What follows from an action's own description (engine/runs/gitops.py): called by the action
    gate for real (not dry-run) actions only."""

    async def before(self, run: RunInfo, action: Action) -> None:
        """After the intent is recorded, before the call: declare what must follow it even
        if the daemon dies during the call (the restore of a suspension)."""
        ...

    async def succeeded(self, run: RunInfo, action: Action, action_id: int) -> None:
        """The call succeeded (the check that the change stuck)."""
        ...


class Escalator(Protocol):
    async def escalate(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> None:
        """Ask humans to look. `episode_id` is the episode, or for a system-wide page (the storm
        breaker) a stable key of its own; either way it is the page's deduplication key."""
        ...

    async def resolved(self, episode_id: str) -> None:
        """The episode's alert resolved: close what the escalation opened (e.g. PagerDuty)."""
        ...


class StormGate(Protocol):
    async def admit(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        """The work that may be dispatched; firing work the open storm breaker holds is not."""
        ...

    async def refused(self, episode_id: str, kind: str) -> None:
        """An alert was refused before acting (it counts towards the storm)."""
        ...


class Reporter(Protocol):
    # Whether reports go anywhere: a run's progress notes are only made when they do.
    delivers: bool

    async def report(self, episode_id: str, kind: str, details: dict[str, Any]) -> None: ...

    async def resend(self, episode_id: str) -> int:
        """Queue the episode's reports again; how many."""
        ...


class Verifier(Protocol):
    async def schedule(self, spec: PlaybookSpec, run: RunInfo, alert: Alert) -> None:
        """After the bake time, prove the action worked (or escalate)."""
        ...


class Approvals(Protocol):
    async def requested(self, run: RunInfo) -> None:
        """An approve-mode run recorded the calls it would make: wait for a human decision
        (durably, with a timeout that escalates)."""
        ...


class RecordingEscalator:
    """Records every escalation; delivery/escalate.py delivers them to the channels on top."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._log = get_logger(component="escalation")

    async def escalate(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> None:
        await self._store.add_escalation(episode_id, run_id, reason, details)
        self._metrics.escalations.labels(reason=details.get("kind", "other")).inc()
        self._log.warning("escalation", episode=episode_id, run=run_id, reason=reason)

    async def resolved(self, episode_id: str) -> None:
        return None


class NoReports:
    delivers = False

    async def report(self, episode_id: str, kind: str, details: dict[str, Any]) -> None:
        return None

    async def resend(self, episode_id: str) -> int:
        raise LookupError("reports are not configured (reports.slack)")
