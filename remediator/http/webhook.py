"""POST /webhook (and /): the Alertmanager receiver.

Status codes follow Alertmanager's retry rules: 2xx only once the notification is durably
recorded; 401 bad credentials; 400/413/422 for input that can never succeed (Alertmanager drops
it); 503 when we cannot record it now, so that Alertmanager retries. Never 500 for input.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from remediator.alertmanager import Limits, PayloadError, validate_notification
from remediator.engine.intake.intake import IntakeFull
from remediator.engine.views import StoreUnavailable
from remediator.http.auth import authorized
from remediator.http.keys import ENGINE, SETTINGS, WEBHOOK_CREDENTIALS
from remediator.logs import get_logger

log = get_logger(component="webhook")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": "5"} if status == 503 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


async def receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    engine = request.app[ENGINE]
    metrics = engine.metrics
    response = await _receive(request)
    metrics.webhook_latency.observe(time.perf_counter() - started)
    return response


async def _receive(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    metrics = engine.metrics
    settings = request.app[SETTINGS]
    if not authorized(request.headers.get("Authorization"), request.app[WEBHOOK_CREDENTIALS]):
        metrics.notifications.labels(result="unauthorized").inc()
        return web.json_response(
            {"error": "missing or wrong credentials"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="remediator"'},
        )
    limit = settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics.notifications.labels(result="too_large").inc()
        return _error(413, f"body larger than {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.notifications.labels(result="too_large").inc()
        return _error(413, f"body larger than {limit} bytes")
    hooks = settings.webhook
    limits = Limits(
        hooks.max_alerts_per_notification, hooks.max_labels_per_alert, hooks.max_label_value_chars
    )
    try:
        data = validate_notification(body, limits)
    except PayloadError as exc:
        result = "bad_request" if exc.status == 400 else "unprocessable"
        metrics.notifications.labels(result=result).inc()
        log.info("rejected notification", status=exc.status, reason=exc.message)
        return _error(exc.status, exc.message, details=exc.errors)
    try:
        notification_id = await engine.intake.submit(data, body)
    except (IntakeFull, StoreUnavailable) as exc:
        metrics.notifications.labels(result="unavailable").inc()
        log.warning("cannot record now", reason=str(exc))
        return _error(503, f"cannot record the notification now: {exc}")
    except Exception:
        # Our fault, not the sender's: ask Alertmanager to retry rather than drop it.
        metrics.notifications.labels(result="unavailable").inc()
        log.exception("unexpected intake failure")
        return _error(503, "internal error while recording; retry")
    metrics.recorded.inc()
    alerts = data["alerts"]
    resolved = sum(1 for alert in alerts if alert["status"] == "resolved")
    if resolved:
        metrics.alerts_resolved.inc(resolved)
    if len(alerts) > resolved:
        metrics.alerts_firing.inc(len(alerts) - resolved)
    truncated = data.get("truncatedAlerts", 0)
    if truncated:
        log.warning(
            "notification truncated by Alertmanager",
            truncated=truncated,
            notification=notification_id,
        )
    # Episodes are the digester's work, after this answer: see engine/intake/digest.py.
    # Formatted, not json.dumps'd: this is every request, and both values are plain
    # (an id of [a-z0-9-] and an int).
    return web.Response(
        body=(
            f'{{"status": "recorded", "notification": "{notification_id}", '
            f'"truncated_alerts": {int(truncated)}}}'
        ).encode(),
        content_type="application/json",
    )
