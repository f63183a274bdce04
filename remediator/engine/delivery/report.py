"""What a report says, built from the durable record, and queued in the outbox.

The pipeline calls `report(episode_id, kind, details)` after each step (a run ended, a
verification, a revert, a follow-up, the alert resolved). The report document is built here,
at that moment, from the record (the episode, the run's actions with their exact `change`, the
evidence, the approval) and queued on the `slack_report` outbox channel, so Slack being slow or
down never delays the pipeline, and delivery after a restart needs nothing else. Only fields
the record holds for this purpose go in (labels, summaries, actions, evidence); the playbooks
keep secrets such as DSNs out of the evidence, and delivery scrubs configured secrets again.
A run in flight also reports its steps (kind `progress`, engine/delivery/progress.py): those
documents come complete from the run and are queued as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from remediator.clock import Clock
from remediator.engine.delivery.approval_view import approval_document
from remediator.engine.delivery.outbox import Outbox
from remediator.engine.delivery.progress import PROGRESS
from remediator.logs import get_logger
from remediator.store import Store, StoreUnavailable
from remediator.store.records import ActionRecord, ActionState, EpisodeRecord, RunRecord

SLACK_REPORT = "slack_report"  # the outbox channel of reports
REPORT = "report"  # outbox kind
APPROVAL_REQUEST = "approval_request"  # outbox kind: a pending run's report with buttons
APPROVAL_DECIDED = "approval_decided"  # outbox kind: its buttons replaced by the decision
RUN_NOW_TAKEN = "run_now_taken"  # outbox kind: a shadow report's "Run now" used
MANUAL_LABEL = "remediator_manual"  # set on the synthetic alert of a run by hand


def episode_document(episode: EpisodeRecord) -> dict[str, Any]:
    """What fired, as the header of the episode's thread shows it."""
    return {
        "id": episode.id,
        "alertname": episode.alertname,
        "severity": episode.labels.get("severity"),
        "labels": episode.labels,
        "summary": episode.annotations.get("summary") or episode.annotations.get("description"),
        "generator_url": episode.generator_url,
        "starts_at": episode.starts_at.isoformat(),
        "truncated": episode.truncated,
        "manual": episode.labels.get(MANUAL_LABEL) == "true",
    }


def action_document(action: ActionRecord) -> dict[str, Any]:
    return {
        "id": action.id,
        "summary": action.summary,
        "verb": action.verb,
        "resource": action.resource,
        "object": action.object,
        "change": action.change,
        "state": action.state,
        "error": action.error,
    }


def _actions_of(
    kind: str, run: RunRecord | None, actions: list[ActionRecord]
) -> list[ActionRecord]:
    """The actions this report is about: a later step (revert, follow-up) shows what it did
    after the run ended; a run shows what it did, or what it would have done."""
    if run is None:
        return []
    mine = [a for a in actions if a.run_id == run.id]
    if kind in ("reverted", "follow_up"):
        return [a for a in mine if run.finished_at is not None and a.intended_at > run.finished_at]
    if kind == "resumed":  # the restore of a GitOps controller's reconciliation: its last
        return mine[-1:]
    if kind == "undone":  # the check found a change undone: the reason says which
        return []
    real = [a for a in mine if a.state != ActionState.WOULD]
    would = [a for a in mine if a.state == ActionState.WOULD]
    if kind in ("run_shadow", "run_pending_approval"):
        return would
    return real or (would if kind != "run_acted" else [])


async def build_report(
    store: Store, episode_id: str, kind: str, details: dict[str, Any], *, at: datetime
) -> dict[str, Any] | None:
    """The report document as of `at`, or None when there is nothing to tell (e.g. an alert
    no playbook handled resolved)."""
    episode = await store.get_episode(episode_id)
    if episode is None:
        return None
    runs = await store.runs_for(episode_id)
    if kind == "resolved" and not runs:
        return None
    run_id = details.get("run_id")
    run = next((r for r in runs if r.id == run_id), None)
    if run is None and runs and kind in ("verification", "reverted"):
        run = runs[-1]
    actions = _actions_of(kind, run, await store.actions_for(episode_id))
    document: dict[str, Any] = {
        "event": REPORT,
        "kind": kind,
        "episode": episode_document(episode),
        "playbook": details.get("playbook") or (run.playbook if run else None),
        "target": details.get("target") or (run.target_key if run else None),
        "mode": details.get("mode") or (run.mode if run else None),
        "run_id": run.id if run else None,
        "state": details.get("kind"),
        "error": run.error if run and kind.startswith("run_") else None,
        # What the run handed to humans (its escalation follows): a noop that escalates did
        # not find "nothing to do".
        "escalated": run.escalation if run and kind.startswith("run_") else None,
        "actions": [action_document(a) for a in actions],
        "evidence": details.get("evidence") or {},
        "at": at.isoformat(),
    }
    if kind == "verification":
        document["verification"] = {
            k: details.get(k) for k in ("result", "detail", "query") if details.get(k) is not None
        }
    if kind in ("undone", "resumed"):
        document["reason"] = details.get("reason")
    if kind == "resolved" and details.get("seconds_to_resolve") is not None:
        document["seconds_to_resolve"] = details["seconds_to_resolve"]
    if run is not None and kind == "run_acted":
        approval = await store.get_approval(run.id)
        if approval is not None and approval.decided_by:
            document["approved_by"] = {"who": approval.decided_by, "reason": approval.reason}
    if run is not None and kind == "run_pending_approval":
        waiting = await approval_document(store, run, at)
        if waiting is not None:
            document["approval"] = waiting
    return document


class SlackReports:
    """The engine's Reporter when reports are configured: build, then queue; never raise."""

    delivers = True

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        *,
        approvers: Callable[[str, str], list[str]] | None = None,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._outbox = outbox
        # Slack approvals: who may decide a run (playbook, target); None: no buttons at all.
        self._approvers = approvers
        self._log = get_logger(component="reports")

    async def report(self, episode_id: str, kind: str, details: dict[str, Any]) -> None:
        try:
            if kind == PROGRESS:  # a step of a run in flight: the document is complete
                await self._outbox.enqueue(SLACK_REPORT, episode_id, PROGRESS, details)
                return
            document = await build_report(
                self._store, episode_id, kind, details, at=self._clock.now()
            )
            if document is not None:
                await self._outbox.enqueue(SLACK_REPORT, episode_id, self._kind(document), document)
        except StoreUnavailable as exc:
            # A report is worth less than the remediation that called us: log and go on.
            self._log.error("cannot queue a report", episode=episode_id, kind=kind, error=str(exc))

    async def resend(self, episode_id: str) -> int:
        """Queue the episode's reports again (one per run, and its resolution); the count."""
        runs = await self._store.runs_for(episode_id)
        sent = 0
        for run in runs:
            details = {"kind": run.state, "run_id": run.id, "evidence": run.evidence}
            document = await build_report(
                self._store, episode_id, f"run_{run.state}", details, at=self._clock.now()
            )
            if document is not None:
                document["resent"] = True
                await self._outbox.enqueue(SLACK_REPORT, episode_id, self._kind(document), document)
                sent += 1
        return sent

    def _kind(self, document: dict[str, Any]) -> str:
        """The outbox kind of a report; buttons only where someone may press them."""
        if self._approvers is None:
            return REPORT
        who = self._approvers(str(document.get("playbook")), str(document.get("target")))
        if not who:
            return REPORT
        approval = document.get("approval")
        if approval is not None and approval.get("state") == "pending":
            approval["approvers"] = who
            return APPROVAL_REQUEST
        # A shadow run that would change something: offer "Run now" (still a report, so a
        # storm of them is summarised; a re-sent one offers nothing).
        manual = (document.get("episode") or {}).get("manual")
        if document["kind"] == "run_shadow" and document["actions"] and not manual:
            document["run_now"] = not document.get("resent")
        return REPORT
