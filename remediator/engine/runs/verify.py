"""Verification: after the bake time, ask Prometheus whether the action fixed the alert.

What is asked:
- by default, the alert's own expression, taken from the `g0.expr` parameter of its
  `generatorURL`, keeping only the series that belong to this alert (every label of the series,
  except `__name__`, equal to the alert's label of the same name): none left means verified;
- or the playbook's `Verify(promql=...)`, where `{{ $labels.name }}` (Prometheus template
  syntax) is replaced by the alert's label value, escaped for a PromQL double-quoted string
  literal; so write it inside quotes: `deriv(lag{group="{{ $labels.consumergroup }}"}[5m]) > 0`.
  A missing label is an error (an empty value would widen the selector), never an empty string.

With the playbook's own query, passing it is not enough while the alert itself still fires: its
condition is asked too (the alert's expression, or `ALERTS{alertname=...}` when the alert
carries none). Still firing after the bake is `not_verified`, unless the playbook's
`Verify(progress=...)` query shows clear progress (falling lag), which is `verified` and says so.

The bake time is the playbook's `Verify(bake=...)`, or `playbooks.<name>.verify.bake_seconds`.

The outcome is `verified`, `not_verified`, or `unknown` (Prometheus unreachable or the query
cannot be evaluated). It is recorded durably (table `verifications`), counted, reported, fed to
the storm breaker; anything but verified is escalated. The action is never repeated. An episode
that resolved before the bake time ended is verified: Prometheus itself saw the alert clear.

The wait is a durable timer, so a verification due during a restart still happens after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from remediator.alertmanager import Alert
from remediator.clients.prometheus import (
    PrometheusClient,
    PrometheusError,
    Sample,
    escape_label_value,
)
from remediator.clock import Clock
from remediator.engine.guards.storm import StormBreaker
from remediator.engine.hooks import Escalator, Reporter
from remediator.engine.timers import Timers
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import PlaybookSpec, RunInfo
from remediator.store import Store
from remediator.store.records import TimerRecord, VerificationResult

VERIFY = "verify"  # timer kind
_PLACEHOLDER = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


class QueryError(ValueError):
    """The verification query cannot be built from this alert."""


def alert_expression(generator_url: str) -> str | None:
    """The expression behind an alert, from Prometheus' `.../graph?g0.expr=...` link."""
    values = parse_qs(urlsplit(generator_url).query).get("g0.expr")
    return values[0] if values and values[0].strip() else None


def escape_promql(value: str) -> str:
    """Escape for the inside of a PromQL double-quoted string literal."""
    return escape_label_value(value)


def render_query(template: str, labels: Mapping[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name not in labels:
            raise QueryError(f"the alert has no label {name!r} for the verification query")
        return escape_promql(labels[name])

    return _PLACEHOLDER.sub(fill, template)


# Labels of a series that the alert itself does not carry: the metric name, and ALERTS' state.
_NOT_ALERT_LABELS = frozenset({"__name__", "alertstate"})


def belongs_to(sample: Sample, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in sample.labels.items() if k not in _NOT_ALERT_LABELS)


def firing_query(alert: Alert) -> str:
    """What shows that the alert still fires: its own expression, or Prometheus' ALERTS."""
    expression = alert_expression(alert.generatorURL)
    if expression is not None:
        return expression
    name = escape_promql(alert.labels.get("alertname", ""))
    return f'ALERTS{{alertname="{name}", alertstate="firing"}}'


def plan(spec: PlaybookSpec, alert: Alert) -> dict[str, Any]:
    """The timer payload: the query to run and how to judge it (or why there is none)."""
    verify = spec.verify
    assert verify is not None
    if verify.promql:
        try:
            query = render_query(verify.promql, alert.labels)
        except QueryError as exc:
            return {"query": verify.promql, "error": str(exc)}
        planned: dict[str, Any] = {
            "query": query,
            "success_when_empty": verify.success_when_empty,
            "firing_query": firing_query(alert),
            "series_of": dict(alert.labels),
        }
        if verify.progress:
            try:
                planned["progress"] = render_query(verify.progress, alert.labels)
            except QueryError as exc:
                planned["progress_error"] = str(exc)
        return planned
    expression = alert_expression(alert.generatorURL)
    if expression is None:
        return {"query": "", "error": "the alert's generatorURL carries no g0.expr expression"}
    return {"query": expression, "success_when_empty": True, "series_of": dict(alert.labels)}


class Verification:
    """The engine's Verifier: schedules the durable timer and judges the outcome."""

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        prometheus: PrometheusClient | None,
        escalator: Escalator,
        reporter: Reporter,
        breaker: StormBreaker,
        timers: Timers,
        bake_of: Callable[[str], timedelta | None] = lambda _playbook: None,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._bake_of = bake_of
        self._store = store
        self._metrics = metrics
        self._prometheus = prometheus
        self._escalator = escalator
        self._reporter = reporter
        self._breaker = breaker
        self._timers = timers
        self._log = get_logger(component="verify")

    async def schedule(self, spec: PlaybookSpec, run: RunInfo, alert: Alert) -> None:
        assert spec.verify is not None
        bake = self._bake_of(spec.name)
        await self._store.add_timer(
            VERIFY,
            run.episode_id,
            due_at=self._clock.now() + (spec.verify.bake if bake is None else bake),
            run_id=run.run_id,
            playbook=run.playbook,
            payload={**plan(spec, alert), "target": run.target.key},
        )
        self._timers.wake()

    async def on_timer(self, timer: TimerRecord) -> None:
        payload = timer.payload
        result, detail = await self._judge(timer.episode_id, payload)
        playbook = timer.playbook or ""
        assert timer.run_id is not None
        await self._store.record_verification(
            episode_id=timer.episode_id,
            run_id=timer.run_id,
            playbook=playbook,
            target_key=str(payload.get("target", "")),
            query=str(payload.get("query", "")),
            result=result,
            detail=detail,
        )
        self._metrics.verifications.labels(playbook=playbook, result=result.value).inc()
        self._log.info(
            "verification", episode=timer.episode_id, playbook=playbook, result=result.value
        )
        details = {
            "kind": f"verification_{result.value}",
            "playbook": playbook,
            "target": payload.get("target"),
            "query": payload.get("query"),
            "result": result.value,
            "detail": detail,
        }
        await self._reporter.report(timer.episode_id, "verification", details)
        if result is not VerificationResult.VERIFIED:
            await self._escalator.escalate(
                timer.episode_id, timer.run_id, f"verification {result.value}: {detail}", details
            )
        await self._breaker.evaluate_verifications()

    async def _judge(
        self, episode_id: str, payload: dict[str, Any]
    ) -> tuple[VerificationResult, str]:
        episode = await self._store.get_episode(episode_id)
        if episode is not None and episode.status == "resolved":
            return VerificationResult.VERIFIED, "the alert resolved"
        if payload.get("error"):
            return VerificationResult.UNKNOWN, str(payload["error"])
        if self._prometheus is None:
            return VerificationResult.UNKNOWN, "no Prometheus configured (prometheus.url)"
        query = str(payload["query"])
        try:
            samples = await self._prometheus.query(query)
        except PrometheusError as exc:
            return VerificationResult.UNKNOWN, f"Prometheus: {exc}"
        series_of = payload.get("series_of")
        if series_of is not None and "firing_query" not in payload:  # the alert's expression
            samples = [s for s in samples if belongs_to(s, series_of)]
        empty = not samples
        passed = empty == bool(payload.get("success_when_empty", True))
        own = f"{len(samples)} series returned"
        if not passed:
            return VerificationResult.NOT_VERIFIED, f"{own}: {_shown(samples)}"[:500]
        if "firing_query" not in payload:
            return VerificationResult.VERIFIED, own
        return await self._still_firing(payload, own)

    async def _still_firing(
        self, payload: dict[str, Any], own: str
    ) -> tuple[VerificationResult, str]:
        """The playbook's own check passed; an alert still firing needs clear progress."""
        assert self._prometheus is not None
        series_of = payload.get("series_of") or {}
        try:
            firing = await self._prometheus.query(str(payload["firing_query"]))
        except PrometheusError as exc:
            return (
                VerificationResult.UNKNOWN,
                f"the playbook's check passed ({own}), but whether the alert still fires is "
                f"unknown: Prometheus: {exc}",
            )
        firing = [s for s in firing if belongs_to(s, series_of)]
        if not firing:
            return VerificationResult.VERIFIED, f"{own}; the alert's condition no longer holds"
        still = f"the alert still fires after the bake ({_shown(firing)})"
        if payload.get("progress_error"):
            return VerificationResult.UNKNOWN, f"{still}; progress: {payload['progress_error']}"
        if payload.get("progress"):
            try:
                moving = await self._prometheus.query(str(payload["progress"]))
            except PrometheusError as exc:
                return VerificationResult.UNKNOWN, f"{still}; progress: Prometheus: {exc}"
            if moving:
                return (
                    VerificationResult.VERIFIED,
                    f"{still}, but it is improving: {_shown(moving)}"[:500],
                )
        return (
            VerificationResult.NOT_VERIFIED,
            f"{still}, and no progress is shown (the playbook's check: {own})"[:500],
        )


def _shown(samples: list[Sample]) -> str:
    return ", ".join(f"{s.labels}={s.value:g}" for s in samples[:3])
