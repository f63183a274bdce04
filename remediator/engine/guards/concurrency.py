"""A global cap on real actions executing at once.

"In flight" means a call is running: the slot is taken after the guards passed and the intent
was recorded, and released when the call returns or fails. Dry runs never take one. Taking the
slot happens under the same admission lock as the check (see engine/run.py), so the cap cannot
be overshot by runs checking at the same moment. A full cap refuses (and escalates) rather than
queues: many simultaneous actions are a sign of something systemic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from remediator.playbook import Action, ActionRefused, RunInfo

NAME = "concurrency"


class ConcurrencyGuard:
    name = NAME

    def __init__(self, max_in_flight: int) -> None:
        self._max = max_in_flight
        self.in_flight = 0

    async def check(self, run: RunInfo, action: Action) -> None:
        if not run.dry_run and self.in_flight >= self._max:
            raise ActionRefused(
                NAME, f"{self.in_flight} actions already in flight (cap {self._max})"
            )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
