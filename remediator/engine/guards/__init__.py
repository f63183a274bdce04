"""Guards checked immediately before every action, in a fixed order; the first refusal wins.

Order: kill switch, rate limits, blast radius, GitOps policy, storm breaker, concurrency, then
the approval match for approved runs. Cheap, operator-driven refusals come first so the
recorded reason is the most useful one. Every refusal is counted and logged here with its
guard and reason; the run records it on the action (see engine/runs/run.py) and the pipeline
escalates. A full concurrency cap is not a refusal: it defers the action until a slot frees.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from remediator.clock import Clock
from remediator.config import GuardSettings
from remediator.engine.guards.approval import ApprovedCalls
from remediator.engine.guards.blast import BlastRadiusGuard
from remediator.engine.guards.concurrency import ConcurrencyGuard
from remediator.engine.guards.gitops import GitOpsGuard
from remediator.engine.guards.killswitch import KillSwitchGuard
from remediator.engine.guards.ratelimit import RateLimitGuard
from remediator.engine.guards.storm import StormBreaker
from remediator.engine.hooks import Escalator
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Action, ActionRefused, RunInfo
from remediator.playbook.gitops import GitOpsRules
from remediator.store import Store


class Guard(Protocol):
    name: str

    async def check(self, run: RunInfo, action: Action) -> None:
        """Raise ActionRefused(self.name, why) to stop the action."""
        ...


@runtime_checkable
class Bounds(Protocol):
    """A guard that caps a count (pods, sessions) and can say how much is left."""

    async def allowance(self, run: RunInfo, key: str) -> int | None: ...


class GuardChain:
    """The `Guards` the pipeline uses: every guard in order, and the concurrency slot."""

    def __init__(
        self, guards: Sequence[Guard], concurrency: ConcurrencyGuard, metrics: Metrics
    ) -> None:
        self.guards = list(guards)
        self.concurrency = concurrency
        self._metrics = metrics
        self._log = get_logger(component="guards")

    async def check(self, run: RunInfo, action: Action) -> None:
        for guard in self.guards:
            try:
                await guard.check(run, action)
            except ActionRefused as refused:
                self._metrics.guard_refusals.labels(guard=refused.guard).inc()
                self._log.warning(
                    "action refused",
                    guard=refused.guard,
                    reason=refused.reason,
                    episode=run.episode_id,
                    playbook=run.playbook,
                    target=action.target.key,
                    action=action.summary,
                    dry_run=run.dry_run,
                )
                raise

    def acting(self, run: RunInfo, action: Action) -> AbstractAsyncContextManager[None]:
        return self.concurrency.slot()

    async def allowance(self, run: RunInfo, key: str) -> int | None:
        found = [
            left
            for guard in self.guards
            if isinstance(guard, Bounds) and (left := await guard.allowance(run, key)) is not None
        ]
        return min(found, default=None)


@dataclass(frozen=True)
class Governed:
    """The guard chain and the parts of it other components steer."""

    chain: GuardChain
    breaker: StormBreaker
    approved: ApprovedCalls


def build_guards(
    settings: GuardSettings,
    store: Store,
    escalator: Escalator,
    metrics: Metrics,
    clock: Clock,
    gitops: GitOpsRules | None = None,
) -> Governed:
    breaker = StormBreaker(store, settings.storm, escalator, metrics, clock=clock)
    approved = ApprovedCalls()
    concurrency = ConcurrencyGuard(settings.concurrency.max_in_flight, store)
    chain = GuardChain(
        [
            KillSwitchGuard(store, clock=clock),
            RateLimitGuard(store, settings.rate_limits, clock=clock),
            BlastRadiusGuard(store, settings.blast_radius),
            *([GitOpsGuard(gitops)] if gitops is not None else []),
            breaker,
            concurrency,
            approved,
        ],
        concurrency,
        metrics,
    )
    return Governed(chain, breaker, approved)


__all__ = ["Governed", "GuardChain", "build_guards"]
