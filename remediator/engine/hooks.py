"""The seams the pipeline calls out to: guards, escalation, reports, verification.

The pipeline depends on these protocols only; the governance and reporting layers provide
the real implementations. The defaults here are the honest minimum: no extra guards, and
escalations recorded durably (so nothing is lost before any channel is configured).
"""

from __future__ import annotations

from typing import Any, Protocol

from remediator.alertmanager import Alert
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Action, PlaybookSpec, Target
from remediator.store import Store


class RunInfo(Protocol):
    @property
    def run_id(self) -> int: ...
    @property
    def episode_id(self) -> str: ...
    @property
    def playbook(self) -> str: ...
    @property
    def target(self) -> Target: ...
    @property
    def dry_run(self) -> bool: ...


class Guards(Protocol):
    async def check(self, run: RunInfo, action: Action) -> None:
        """Raise ActionRefused if this action must not happen now. Called before every action,
        in every mode (shadow mode shows what would have been refused)."""
        ...


class Escalator(Protocol):
    async def escalate(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> None: ...

    async def resolved(self, episode_id: str) -> None:
        """The episode's alert resolved: close what the escalation opened (e.g. PagerDuty)."""
        ...


class Reporter(Protocol):
    async def report(self, episode_id: str, kind: str, details: dict[str, Any]) -> None: ...


class Verifier(Protocol):
    async def schedule(self, spec: PlaybookSpec, run: RunInfo, alert: Alert) -> None:
        """After the bake time, prove the action worked (or escalate)."""
        ...


class NoGuards:
    async def check(self, run: RunInfo, action: Action) -> None:
        return None


class RecordingEscalator:
    """Records every escalation; the channels (Slack, PagerDuty, webhook) build on this."""

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
    async def report(self, episode_id: str, kind: str, details: dict[str, Any]) -> None:
        return None


class NoVerification:
    async def schedule(self, spec: PlaybookSpec, run: RunInfo, alert: Alert) -> None:
        return None
