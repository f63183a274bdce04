"""The storm breaker: when too much goes wrong at once, stop all remediation and page once.

A storm is systemic (a node, a network, a bad config push): restarting every workload that
alerts makes it worse. The signals that open it (engine/guards/storm_rules.py) are decided on
the storm picture, which counts every firing alert that arrived with a playbook for it, by
target, as it is digested and before any of it is dispatched (engine/governance/storm_watch.py):
- more than `distinct_targets` distinct targets within `window_seconds`, or more than a share
  of the targets seen recently, overall or in one namespace;
- more than `refusals` of those alerts refused before acting;
and, fed by the verifier, more than `failed_verification_share` of the recent judged
verifications (`verified` or `not_verified`; `unknown` says nothing about the actions) failed.
All of it only counts what happened since the breaker last closed, so closing it does not
re-open it at once on the same evidence. Opening is one conditional write, so exactly one
caller pages, whatever the concurrency. While open, every check refuses, and the digester
holds every new firing alert instead of dispatching it. It stays open until an operator closes
it, or its expiry, if configured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from remediator.clock import Clock
from remediator.config import StormSettings
from remediator.engine.guards.storm_rules import decide
from remediator.engine.hooks import Escalator
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Action, ActionRefused, RunInfo
from remediator.store import Store
from remediator.store.records import BreakerRecord, VerificationResult

NAME = "storm_breaker"
EXPIRY = "expiry"  # `who` when the breaker closes by its configured expiry


class StormBreaker:
    name = NAME

    def __init__(
        self,
        store: Store,
        settings: StormSettings,
        escalator: Escalator,
        metrics: Metrics,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._escalator = escalator
        self._metrics = metrics
        self._log = get_logger(component="storm-breaker")
        # Told after the breaker closed (the storm's Slack message says so).
        self.on_close: list[Callable[[BreakerRecord], Awaitable[None]]] = []

    async def check(self, run: RunInfo, action: Action) -> None:
        breaker = await self.status()
        if breaker is not None:
            raise ActionRefused(
                NAME,
                f"open since {breaker.opened_at.isoformat()}: {breaker.reason}; "
                "all remediation is stopped until an operator closes it",
            )

    async def status(self) -> BreakerRecord | None:
        """The open breaker, if any; closes it first if its expiry has passed."""
        breaker = await self._store.current_breaker()
        if breaker is not None and not breaker.open_at(self._clock.now()):
            await self.close(who=EXPIRY, reason="the configured expiry passed")
            breaker = None
        self._metrics.breaker_open.set(1 if breaker is not None else 0)
        return breaker

    async def close(self, *, who: str, reason: str) -> BreakerRecord | None:
        closed = await self._store.close_breaker(who=who, reason=reason)
        if closed is not None:
            self._metrics.breaker_open.set(0)
            self._log.warning("storm breaker closed", by=who, reason=reason)
            await self._escalator.resolved(closed.page_key)
            for told in self.on_close:
                await told(closed)
        return closed

    async def _since(self, window_seconds: float) -> datetime:
        start = self._clock.now() - timedelta(seconds=window_seconds)
        closed = await self._store.last_breaker_close()
        return max(start, closed) if closed is not None else start

    async def evaluate_targets(self, mode: str | None = None) -> BreakerRecord | None:
        """Decide on the storm picture; open (and page) if it is a storm. `mode` is recorded
        with the page: `shadow` when nothing would have been changed anyway."""
        s = self._settings
        known_since = None
        if s.share_of_known_workloads is not None:
            known_since = self._clock.now() - timedelta(seconds=s.known_workloads_window_seconds)
        picture = await self._store.storm_picture(await self._since(s.window_seconds), known_since)
        opening = decide(picture, s)
        if opening is None:
            return None
        details = {**opening.details, "mode": mode} if mode else opening.details
        return await self._open(opening.reason, details)

    async def evaluate_verifications(self) -> BreakerRecord | None:
        s = self._settings
        since = await self._since(s.verification_window_seconds)
        judged = [
            r
            for r in await self._store.recent_verifications(since)
            if r != VerificationResult.UNKNOWN
        ]
        failed = judged.count(VerificationResult.NOT_VERIFIED)
        if len(judged) < s.min_verifications or failed / len(judged) <= s.failed_verification_share:
            return None
        return await self._open(
            f"{failed} of the last {len(judged)} verified actions did not fix their alert "
            f"(more than {s.failed_verification_share:.0%})",
            {"failed": failed, "judged": len(judged)},
        )

    async def _open(self, reason: str, details: dict[str, Any]) -> BreakerRecord | None:
        expiry = self._settings.expiry_seconds
        expires_at = self._clock.now() + timedelta(seconds=expiry) if expiry else None
        opened = await self._store.open_breaker(reason, details, expires_at)
        if opened is None:
            return await self._store.current_breaker()  # someone else opened it (and paged)
        self._metrics.breaker_open.set(1)
        self._log.error("storm breaker open", reason=reason, **details)
        await self._escalator.escalate(
            opened.page_key,
            None,
            f"storm breaker open, all remediation stopped: {reason}",
            {"kind": "storm", "breaker_id": opened.id, **details},
        )
        return opened
