"""One way to run playbook code: a run, its revert after the resolve, its follow-up.

Every step takes the target's lock, runs its handler under the playbook timeout, sorts the
ending into done / refused (a guard) / failed (a bug, a timeout), flushes the run's progress
notes before anything else is said, and then says what happened once: a decision, a report
and, when humans are needed, one escalation. What differs per step (which decision, which
report) is the caller's; how a step runs and ends is here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from remediator.engine.hooks import Escalator, Reporter
from remediator.engine.runs.locks import KeyedLocks
from remediator.engine.runs.run import EngineRun
from remediator.playbook import ActionRefused
from remediator.store import Fenced, Store
from remediator.store.records import DecisionKind, RunState


@dataclass(frozen=True)
class Ending:
    """How a step's handler ended."""

    run: EngineRun
    refused: ActionRefused | None = None
    # A failure: a timeout or an exception escaping the handler (a bug or an API error).
    failure: str | None = None
    exception: BaseException | None = None  # what ended it early (a refusal included)

    @property
    def error(self) -> str | None:
        return str(self.refused) if self.refused is not None else self.failure

    def state(self, *, approve: bool = False) -> RunState:
        """What the step came to; `approve`: a run in approve mode waits for a human when it
        would have acted."""
        run = self.run
        if self.refused is not None:
            return RunState.REFUSED
        if self.failure is not None:
            return RunState.FAILED
        if run.acted:
            return RunState.ACTED
        if run.would:
            return RunState.PENDING_APPROVAL if approve else RunState.SHADOW
        return RunState.NOOP

    @property
    def escalations(self) -> list[str]:
        """Everything humans must hear: the error first, then what the handler asked for."""
        return [e for e in [self.error, *self.run.escalations] if e]


@dataclass
class Said:
    """What a step says once it ended: one decision, at most one report and one escalation."""

    kind: DecisionKind
    reason: str
    report: str | None = None
    escalation: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class RunExecutor:
    def __init__(
        self,
        *,
        store: Store,
        reporter: Reporter,
        escalator: Escalator,
        locks: KeyedLocks,
        timeout_seconds: float,
    ) -> None:
        self._store = store
        self._reporter = reporter
        self._escalator = escalator
        self.locks = locks
        self._timeout = timeout_seconds

    async def execute(
        self,
        run: EngineRun,
        handler: Callable[[], Awaitable[Any]],
        log: Any,
        *,
        what: str = "playbook",
        on_start: Callable[[], None] | None = None,
    ) -> Ending:
        """Run `handler` for `run` under the target's lock and the timeout; never raises for
        what the handler does (a playbook bug must not take the daemon down), only `Fenced`:
        this replica lost its lease and another reconciles the run."""
        async with self.locks.hold(run.target.key):
            if on_start is not None:
                on_start()
            try:
                async with asyncio.timeout(self._timeout):
                    await handler()
            except ActionRefused as refused:
                return Ending(run, refused=refused, exception=refused)
            except Fenced:
                raise  # this replica may not act, nor say anything more of the run
            except TimeoutError as exc:
                return Ending(run, failure=f"timed out after {self._timeout:g} s", exception=exc)
            except Exception as exc:
                log.exception(f"{what} failed")
                return Ending(run, failure=f"{type(exc).__name__}: {exc}", exception=exc)
            finally:
                await run.progress.finish()  # its notes go before its report
        return Ending(run)

    async def say(self, episode_id: str, playbook: str, run_id: int | None, said: Said) -> None:
        """Record the decision, then report, then escalate once."""
        await self._store.record_decision(episode_id, playbook, said.kind, said.reason, run_id)
        if said.report is not None:
            details = {**said.details, "run_id": run_id} if run_id is not None else said.details
            await self._reporter.report(episode_id, said.report, details)
        if said.escalation:
            await self._escalator.escalate(episode_id, run_id, said.escalation, said.details)
