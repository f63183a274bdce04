"""A playbook run by hand against a target: a synthetic episode through the same pipeline.

The operator names a playbook and the labels an alert would carry; the run is recorded as a
synthetic episode (label `remediator_manual="true"`, an audit row, a decision naming who and
why), claimed, locked and guarded exactly like an alert's run. It is a dry run (shadow) unless
the operator asks for a real one, which then acts under every guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from remediator.alertmanager import Alert
from remediator.config import Mode
from remediator.engine.delivery.report import MANUAL_LABEL
from remediator.engine.guards.blast import scope_refusal
from remediator.engine.runs.pipeline import Pipeline
from remediator.logs import get_logger
from remediator.playbook import TargetError
from remediator.store.records import RunState, WorkItem, WorkKind


class ManualRunError(ValueError):
    """The run cannot start: `unknown` for a playbook not loaded, else the target is bad."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True)
class ManualRun:
    episode_id: str
    run_state: RunState
    target: str
    dry_run: bool


async def run_by_hand(
    pipeline: Pipeline,
    playbook: str,
    labels: Mapping[str, str],
    *,
    dry_run: bool,
    who: str,
    reason: str,
) -> ManualRun:
    spec = pipeline.registry.get(playbook)
    if spec is None:
        raise ManualRunError(f"no playbook named {playbook!r} is loaded", unknown=True)
    alert_labels = {"alertname": f"manual:{playbook}", **labels, MANUAL_LABEL: "true"}
    try:
        target = spec.target(alert_labels, pipeline.scope)
    except TargetError as exc:
        raise ManualRunError(f"no valid target in these labels: {exc}") from exc
    outside = scope_refusal(target, pipeline.settings.guards.blast_radius)
    if outside is not None:
        raise ManualRunError(f"{target.key} is out of scope: {outside}")
    missing = sorted(spec.needs - set(pipeline.clients))
    if missing:
        raise ManualRunError(f"{playbook} needs the {', '.join(missing)} client (not configured)")
    alert = Alert(
        status="firing",
        labels=alert_labels,
        annotations={"summary": f"run by hand by {who}: {reason}"},
        startsAt=pipeline.clock.now(),
        fingerprint=f"manual-{uuid.uuid4().hex[:16]}",
    )
    details = {"playbook": playbook, "target": target.key, "dry_run": dry_run}
    episode_id = await pipeline.store.record_manual_episode(
        alert, who=who, reason=reason, details=details
    )
    episode = await pipeline.store.get_episode(episode_id)
    assert episode is not None
    log = get_logger(component="manual").bind(episode=episode_id, by=who)
    state = await pipeline.run_playbook(
        spec,
        target,
        episode,
        WorkItem(WorkKind.FIRING, episode_id, alert),
        log,
        mode=Mode.SHADOW if dry_run else Mode.AUTO,
    )
    return ManualRun(episode_id, state, target.key, dry_run)
