"""The storm breaker: when too much goes wrong at once, stop all remediation and page once.

A storm is systemic (a node, a network, a bad config push): restarting every workload that
alerts makes it worse. Two signals open it:
- more than `distinct_targets` distinct targets (or, if set, more than a share of the targets
  seen recently) started a run within `window_seconds`;
- more than `failed_verification_share` of the recent judged verifications (`verified` or
  `not_verified`; `unknown` says nothing about the actions) failed.
Both are computed from the durable record and only count what happened since the breaker last
closed, so closing it does not re-open it at once on the same evidence. Opening is one
conditional write, so exactly one caller pages, whatever the concurrency. While open, every
check refuses. It stays open until an operator closes it, or its expiry, if configured.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.config import StormSettings
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
        self, store: Store, settings: StormSettings, escalator: Escalator, metrics: Metrics
    ) -> None:
        self._store = store
        self._settings = settings
        self._escalator = escalator
        self._metrics = metrics
        self._log = get_logger(component="storm-breaker")

    async def check(self, run: RunInfo, action: Action) -> None:
        breaker = await self.status() or await self.evaluate_targets()
        if breaker is not None:
            raise ActionRefused(
                NAME,
                f"open since {breaker.opened_at.isoformat()}: {breaker.reason}; "
                "all remediation is stopped until an operator closes it",
            )

    async def status(self) -> BreakerRecord | None:
        """The open breaker, if any; closes it first if its expiry has passed."""
        breaker = await self._store.current_breaker()
        if breaker is not None and not breaker.open_at(datetime.now(UTC)):
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
        return closed

    async def _since(self, window_seconds: float) -> datetime:
        start = datetime.now(UTC) - timedelta(seconds=window_seconds)
        closed = await self._store.last_breaker_close()
        return max(start, closed) if closed is not None else start

    async def evaluate_targets(self) -> BreakerRecord | None:
        s = self._settings
        alerting = await self._store.count_run_targets(await self._since(s.window_seconds))
        details: dict[str, Any] = {
            "distinct_targets": alerting,
            "threshold": s.distinct_targets,
            "window_seconds": s.window_seconds,
        }
        if alerting > s.distinct_targets:
            return await self._open(
                f"{alerting} distinct targets alerting within {s.window_seconds:g} s "
                f"(more than {s.distinct_targets})",
                details,
            )
        if s.share_of_known_workloads is not None and alerting >= s.min_targets_for_share:
            known = await self._store.count_run_targets(
                datetime.now(UTC) - timedelta(seconds=s.known_workloads_window_seconds)
            )
            if known and alerting / known > s.share_of_known_workloads:
                return await self._open(
                    f"{alerting} of {known} known targets alerting within "
                    f"{s.window_seconds:g} s (more than {s.share_of_known_workloads:.0%})",
                    {**details, "known_targets": known},
                )
        return None

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
        expires_at = datetime.now(UTC) + timedelta(seconds=expiry) if expiry else None
        opened = await self._store.open_breaker(reason, details, expires_at)
        if opened is None:
            return await self._store.current_breaker()  # someone else opened it (and paged)
        self._metrics.breaker_open.set(1)
        self._log.error("storm breaker open", reason=reason, **details)
        await self._escalator.escalate(
            opened.page_key,
            None,
            f"storm breaker open, all remediation stopped: {reason}",
            {"kind": "storm", **details},
        )
        return opened
