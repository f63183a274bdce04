"""When is it a storm: a pure function of the storm picture and the settings.

The store counts (store/sqlite/storm.py), this decides, the breaker records the decision and
pages (engine/guards/storm.py). Counting arrived alerts, not started runs, is what lets the
breaker open before the first action of a storm that arrives in one notification, and count
alerts that would have been refused before acting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remediator.config import StormSettings
from remediator.store.storm_records import StormPicture


@dataclass(frozen=True)
class Opening:
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def decide(picture: StormPicture, s: StormSettings) -> Opening | None:
    """Why the breaker must open on this picture, or None."""
    window = f"within {s.window_seconds:g} s"
    details: dict[str, Any] = {
        "distinct_targets": picture.alerting,
        "threshold": s.distinct_targets,
        "window_seconds": s.window_seconds,
        "by_namespace": dict(picture.alerting_by_namespace),
    }
    if picture.alerting > s.distinct_targets:
        return Opening(
            f"{picture.alerting} distinct targets alerting {window} "
            f"(more than {s.distinct_targets})",
            details,
        )
    if s.refusals is not None and picture.refused > s.refusals:
        return Opening(
            f"{picture.refused} alerts refused before acting {window} (more than {s.refusals})",
            {**details, "refused": picture.refused},
        )
    share = s.share_of_known_workloads
    if share is None:
        return None
    # Overall first (namespace None), then each namespace on its own.
    scopes: list[tuple[str | None, int, int]] = [(None, picture.alerting, picture.known)]
    scopes += [
        (ns, alerting, picture.known_by_namespace.get(ns, 0))
        for ns, alerting in sorted(picture.alerting_by_namespace.items())
    ]
    for namespace, alerting, known in scopes:
        if alerting < s.min_targets_for_share or not known or alerting / known <= share:
            continue
        where = "" if namespace is None else f" in namespace {namespace or '-'}"
        extra: dict[str, Any] = {"known_targets": known}
        if namespace is not None:
            extra["namespace"] = namespace
        return Opening(
            f"{alerting} of {known} known targets{where} alerting {window} (more than {share:.0%})",
            {**details, **extra},
        )
    return None
