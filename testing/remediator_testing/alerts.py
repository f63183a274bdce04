"""Builders for Alertmanager v4 webhook payloads, shaped like what Alertmanager really sends.

Used by our tests and benchmarks, and by users testing their own playbooks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.alertmanager import label_fingerprint

ZERO_TIME = "0001-01-01T00:00:00Z"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(
    labels: Mapping[str, str],
    *,
    status: str = "firing",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
    expr: str = "up == 0",
    fingerprint: str | None = None,
) -> dict[str, Any]:
    starts = starts_at or datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    if status == "resolved" and ends_at is None:
        ends_at = starts + timedelta(minutes=5)
    return {
        "status": status,
        "labels": dict(labels),
        "annotations": dict(annotations or {"summary": f"{labels.get('alertname')} fired"}),
        "startsAt": iso(starts),
        "endsAt": iso(ends_at) if ends_at else ZERO_TIME,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=" + expr.replace(" ", "+"),
        "fingerprint": fingerprint if fingerprint is not None else label_fingerprint(labels),
    }


def notification(
    alerts: Iterable[Mapping[str, Any]],
    *,
    receiver: str = "remediator",
    truncated: int = 0,
    group_labels: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    items = [dict(a) for a in alerts]
    common = dict(items[0]["labels"]) if items else {}
    for item in items[1:]:
        common = {k: v for k, v in common.items() if item["labels"].get(k) == v}
    status = "firing" if any(a["status"] == "firing" for a in items) else "resolved"
    groups = dict(group_labels or {"alertname": common.get("alertname", "")})
    return {
        "version": "4",
        "groupKey": "{}:" + "{" + ",".join(f'{k}="{v}"' for k, v in groups.items()) + "}",
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": receiver,
        "groupLabels": groups,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": items,
        **extra,
    }


def body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload).encode()
