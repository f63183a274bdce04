"""A run's progress as it happens: its start, then each action's intent and outcome.

A rolling restart of several minutes, or a run waiting on a rollout, would otherwise show
nothing in Slack until it ends. A step is reported (kind `progress`, queued on the durable
outbox, posted in the episode's thread) when the run is still going
`reports.progress_after_seconds` after it: a quick run says it all in its final report, a long
one shows each step soon after it happened. The notes keep their order, and come before the
run's final report: `finish()` (called when the run ends) drops the notes not due yet and waits
for the one being queued.

Nothing here may slow the action: each note is a task of its own, chained to the previous
one; the run never waits for one while it acts. A note that cannot be queued costs that note,
never the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from remediator.clock import SYSTEM, Clock
from remediator.engine.hooks import Reporter
from remediator.logs import get_logger
from remediator.playbook import Action

PROGRESS = "progress"  # the report kind (and outbox kind) of a step
STARTED, INTENT, OUTCOME = "started", "intent", "outcome"


class RunProgress:
    def __init__(
        self,
        reporter: Reporter | None,
        episode_id: str,
        about: dict[str, Any],
        *,
        after: float = 0.0,
        enabled: bool = True,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._reporter = reporter
        self._episode_id = episode_id
        self._about = about  # playbook, target, run_id, step
        self._after = after
        self._enabled = enabled and reporter is not None
        self._ended = asyncio.Event()
        self._last: asyncio.Task[None] | None = None
        self._log = get_logger(component="progress")

    @classmethod
    def off(cls) -> RunProgress:
        """Follows nothing (a run nobody reports on)."""
        return cls(None, "", {}, enabled=False, clock=SYSTEM)

    def started(self) -> None:
        self._post(STARTED, None)

    def intent(self, action: Action) -> None:
        self._post(INTENT, _action(action))

    def outcome(self, action: Action, state: str, error: str | None = None) -> None:
        self._post(OUTCOME, {**_action(action), "state": state, "error": error})

    async def finish(self) -> None:
        """The run ended: notes not due yet are dropped (its report says it all); returns
        once the notes already due are queued."""
        self._ended.set()
        if self._last is not None:
            await asyncio.shield(self._last)

    def _post(self, stage: str, action: dict[str, Any] | None) -> None:
        if not self._enabled or self._ended.is_set():
            return
        document = {
            "event": PROGRESS,
            "stage": stage,
            "mode": "auto",
            **self._about,
            "action": action,
            "at": self._clock.now().isoformat(),
        }
        due = self._clock.monotonic() + self._after
        self._last = asyncio.create_task(self._queue(self._last, document, due))

    async def _queue(
        self, previous: asyncio.Task[None] | None, document: dict[str, Any], due: float
    ) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        clock = self._clock
        if due > clock.monotonic():
            await clock.wait(self._ended, due - clock.monotonic())
        if clock.monotonic() < due or self._reporter is None:
            return  # the run ended first: its report says it all
        try:
            await self._reporter.report(self._episode_id, PROGRESS, document)
        except Exception:  # a progress note is worth less than the run that posts it
            self._log.exception("cannot queue a progress note", episode=self._episode_id)


def _action(action: Action) -> dict[str, Any]:
    return {
        "summary": action.summary,
        "verb": action.verb,
        "object": action.target.key,
        "change": dict(action.change),
    }
