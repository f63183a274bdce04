"""Decisions from Slack: the Approve and Deny buttons on a pending run's report.

http/slack.py verifies the request's signature and hands the click to `record`, which stores
it together with a timer due now, in one transaction; the answer to Slack (due within three
seconds) comes after the click is durable and before anything slow happens, and a click
recorded before a crash is processed after the restart. The timer's handler (`on_click`) maps
the Slack user to an approver (user or user-group IDs configured per playbook and per
namespace) and decides through `Governance`, the path the admin API takes, so every guard is
checked again when the approved run acts. A click that cannot change anything (not allowed,
already decided, expired) is answered to the clicker alone (ephemeral, through the
interaction's `response_url`); a refused approver is audited. Every decision, whoever took it,
replaces the buttons with who decided and when (`decided`, queued in the reports' outbox).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from remediator.clients.delivery import DeliveryError
from remediator.clients.slack import SlackClient, respond
from remediator.clock import Clock
from remediator.config import Settings, SlackApprovalSettings
from remediator.engine.delivery.approval_render import (
    APPROVE,
    APPROVED_IN_SLACK,
    DENIED_IN_SLACK,
    DENY,
    RUN_NOW,
)
from remediator.engine.delivery.approval_view import approvers
from remediator.engine.delivery.outbox import Outbox
from remediator.engine.delivery.report import (
    APPROVAL_DECIDED,
    MANUAL_LABEL,
    RUN_NOW_TAKEN,
    SLACK_REPORT,
    build_report,
)
from remediator.engine.delivery.slack_render import who_text
from remediator.engine.governance.api import Governance, GovernanceError
from remediator.engine.governance.approvals import Approvals
from remediator.engine.governance.manual import ManualRunError
from remediator.engine.timers import Timers
from remediator.logs import get_logger
from remediator.store import Store, StoreUnavailable
from remediator.store.records import ApprovalRecord, ApprovalState, RunState, TimerRecord

SLACK_CLICK = "slack_click"  # timer kind: a recorded click waiting to be processed
_VERBS = {APPROVE: "approve", DENY: "deny", RUN_NOW: "run now"}


class InteractionError(ValueError):
    """A signed payload that is not a usable interaction (answered 400)."""


@dataclass(frozen=True)
class Click:
    """One press of our Approve or Deny button, as Slack described it."""

    action: str  # APPROVE, DENY or RUN_NOW
    run_id: int
    user_id: str
    user_name: str
    response_url: str | None
    episode_id: str = ""  # RUN_NOW: the shadow run's episode

    @property
    def who(self) -> str:
        """The approver as the record names them (shown as a mention in Slack)."""
        return f"slack:{self.user_id}"


def parse_click(payload: Any) -> Click | None:
    """Our button in a `block_actions` payload; None for any other interaction (ignored).
    Raises InteractionError when the payload is not what Slack sends."""
    if not isinstance(payload, Mapping):
        raise InteractionError("the payload must be a JSON object")
    if payload.get("type") != "block_actions":
        return None
    user, actions = payload.get("user"), payload.get("actions")
    if not isinstance(user, Mapping) or not isinstance(user.get("id"), str) or not user["id"]:
        raise InteractionError("block_actions without a user id")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
        raise InteractionError("block_actions without actions")
    action = actions[0]
    if action.get("action_id") not in _VERBS:
        return None
    value, _, episode_id = str(action.get("value")).partition(":")
    try:
        run_id = int(value)
    except ValueError:
        raise InteractionError(f"button value {action.get('value')!r} is not a run id") from None
    url = payload.get("response_url")
    return Click(
        action=str(action["action_id"]),
        run_id=run_id,
        user_id=str(user["id"]),
        user_name=str(user.get("username") or user.get("name") or ""),
        response_url=url if isinstance(url, str) and url else None,
        episode_id=episode_id,
    )


def _at(when: datetime) -> str:
    return f"{when.astimezone(UTC):%H:%M} UTC"


def closed_because(approval: ApprovalRecord, now: datetime) -> str | None:
    """Why a click can no longer decide this approval; None while it can."""
    if approval.state != ApprovalState.PENDING:
        by = who_text(approval.decided_by)
        when = f" at {_at(approval.decided_at)}" if approval.decided_at else ""
        if approval.state == ApprovalState.EXPIRED:
            return f"the approval of run {approval.run_id} expired{when}"
        return f"run {approval.run_id} was already {approval.state} by {by}{when}"
    if approval.expires_at <= now:
        return f"the approval of run {approval.run_id} expired at {_at(approval.expires_at)}"
    return None


class SlackApprovals:
    def __init__(
        self,
        *,
        store: Store,
        settings: SlackApprovalSettings,
        governance: Governance,
        outbox: Outbox,
        slack: SlackClient,
        session: aiohttp.ClientSession,
        timeout: float = 10.0,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._governance = governance
        self._outbox = outbox
        self._slack = slack
        self._session = session
        self._timeout = timeout
        self._log = get_logger(component="slack_approvals")

    async def record(self, signature: str, click: Click) -> bool:
        """Store the click and its processing timer; False if this request was seen before."""
        approval = await self._store.get_approval(click.run_id)
        episode_id = approval.episode_id if approval is not None else click.episode_id
        timer = await self._store.record_slack_click(
            signature,
            user_id=click.user_id,
            action=click.action,
            run_id=click.run_id,
            episode_id=episode_id,
            timer_kind=SLACK_CLICK,
            payload={"click": asdict(click)},
        )
        return timer is not None

    async def on_click(self, timer: TimerRecord) -> None:
        """The timer of a recorded click: decide, or say why nothing changed."""
        click = Click(**timer.payload["click"])
        verb = _VERBS[click.action]
        log = self._log.bind(run=click.run_id, user=click.user_id, action=verb)
        if click.action == RUN_NOW:
            await self._run_now(click, log)
            return
        approval = await self._store.get_approval(click.run_id)
        if approval is None:
            await self._answer(
                click, f"Nothing changed: run {click.run_id} never waited for an approval."
            )
            return
        if not await self._approver(click, approval.playbook, approval.target_key, log):
            return
        closed = closed_because(approval, self._clock.now())
        if closed is not None:
            await self._answer(click, f"Nothing changed: {closed}.")
            return
        try:
            if click.action == APPROVE:
                state = await self._governance.approve(
                    click.run_id, who=click.who, reason=APPROVED_IN_SLACK
                )
                log.info("approved in Slack", state=state.value)
                await self._answer(
                    click, f"You approved run {click.run_id}; it ended {state.value}."
                )
            else:
                await self._governance.deny(click.run_id, who=click.who, reason=DENIED_IN_SLACK)
                log.info("denied in Slack")
        except GovernanceError as exc:
            await self._answer(click, f"Nothing changed: {exc}.")

    async def _approver(self, click: Click, playbook: str, target_key: str, log: Any) -> bool:
        """Whether the clicker may decide runs of this playbook on this target; anyone else
        is told so (and audited)."""
        allowed = await self._allowed(click, playbook, target_key)
        if allowed is None:
            return False  # could not tell; the clicker was told
        if not allowed:
            verb = _VERBS[click.action]
            await self._store.record_audit(
                click.who,
                "slack_not_allowed",
                f"run:{click.run_id}",
                f"{verb} clicked in Slack by a user who is not an approver",
                {"user": click.user_id, "name": click.user_name, "action": verb},
            )
            log.warning("not an approver")
            await self._answer(
                click,
                f":no_entry: You are not allowed to {verb} run {click.run_id} "
                f"({playbook} on {target_key}); nothing changed. "
                "Approvers are set in `approval.slack`.",
            )
        return allowed

    async def _run_now(self, click: Click, log: Any) -> None:
        """A shadow run, run for real now by hand: the same guards, at most once."""
        episode = await self._store.get_episode(click.episode_id)
        runs = await self._store.runs_for(click.episode_id) if episode is not None else []
        run = next((r for r in runs if r.id == click.run_id), None)
        if episode is None or run is None or run.state != RunState.SHADOW:
            await self._answer(click, f"Nothing changed: run {click.run_id} is not a shadow run.")
            return
        if not await self._approver(click, run.playbook, run.target_key, log):
            return
        if episode.status != "firing":
            await self._answer(click, "Nothing changed: the alert resolved.")
            return
        reason = f"run now from Slack (shadow run {run.id})"
        first, who, at = await self._store.claim_run_now(
            run.id, episode.id, who=click.who, reason=reason
        )
        if not first:
            await self._answer(
                click,
                f"Nothing changed: run {run.id} was already run now by {who_text(who)} "
                f"at {_at(at)}.",
            )
            return
        labels = {k: v for k, v in episode.labels.items() if k != MANUAL_LABEL}
        try:
            done = await self._governance.run(
                run.playbook, labels, dry_run=False, who=click.who, reason=reason
            )
        except (ManualRunError, GovernanceError) as exc:
            await self._answer(click, f"Nothing changed: {exc}.")
            return
        log.info("run now from Slack", episode=done.episode_id, state=done.run_state.value)
        await self._answer(
            click,
            f"You ran {run.playbook} now on {done.target}; it ended {done.run_state.value} "
            f"(episode {done.episode_id}).",
        )
        details = {"kind": "shadow", "run_id": run.id, "evidence": run.evidence}
        document = await build_report(
            self._store, episode.id, "run_shadow", details, at=self._clock.now()
        )
        if document is not None:
            document["run_now"] = {
                "who": click.who,
                "at": at.isoformat(),
                "state": done.run_state.value,
                "episode_id": done.episode_id,
            }
            await self._outbox.enqueue(SLACK_REPORT, episode.id, RUN_NOW_TAKEN, document)

    async def _allowed(self, click: Click, playbook: str, target_key: str) -> bool | None:
        ids = approvers(self._settings, playbook, target_key)
        if click.user_id in ids:
            return True
        for group in (i for i in ids if i.startswith("S")):
            try:
                members = await self._slack.usergroup_members(group)
            except DeliveryError as exc:
                self._log.error("cannot read a user group", group=group, error=str(exc))
                await self._answer(
                    click,
                    f"Nothing changed: could not check the approvers' group {group} ({exc}); "
                    "try again.",
                )
                return None
            if click.user_id in members:
                return True
        return False

    async def _answer(self, click: Click, text: str) -> None:
        """Tell the clicker alone; best effort (the record and the thread hold the truth)."""
        if click.response_url is None:
            return
        try:
            await respond(self._session, click.response_url, text, timeout_seconds=self._timeout)
        except DeliveryError as exc:
            self._log.warning("cannot answer the click", run=click.run_id, error=str(exc))

    async def decided(self, approval: ApprovalRecord) -> None:
        """A decision was taken (anywhere): queue the update of the message with buttons."""
        runs = await self._store.runs_for(approval.episode_id)
        run = next((r for r in runs if r.id == approval.run_id), None)
        details = {"kind": "pending_approval", "run_id": approval.run_id}
        if run is not None:
            details["evidence"] = run.evidence
        try:
            document = await build_report(
                self._store,
                approval.episode_id,
                "run_pending_approval",
                details,
                at=self._clock.now(),
            )
            if document is None:
                return
            document["decision"] = {
                "state": approval.state,
                "who": approval.decided_by,
                "reason": approval.reason,
                "at": (approval.decided_at or self._clock.now()).isoformat(),
            }
            await self._outbox.enqueue(
                SLACK_REPORT, approval.episode_id, APPROVAL_DECIDED, document
            )
        except StoreUnavailable as exc:
            self._log.error("cannot queue the decision's update", error=str(exc))


def wire_slack_approvals(
    settings: Settings,
    *,
    store: Store,
    governance: Governance,
    outbox: Outbox,
    session: aiohttp.ClientSession,
    approvals: Approvals,
    timers: Timers,
    clock: Clock,
) -> SlackApprovals | None:
    """Built when `approval.slack` has a signing secret: clicks are processed by the timers,
    and every decision updates the message with the buttons."""
    if not settings.approval.slack.enabled:
        return None
    reports = settings.reports.slack
    slack = SlackClient(
        reports.token_value() or "",
        base_url=reports.base_url,
        timeout=reports.timeout_seconds,
        session=session,
    )
    built = SlackApprovals(
        store=store,
        settings=settings.approval.slack,
        governance=governance,
        outbox=outbox,
        slack=slack,
        session=session,
        timeout=reports.timeout_seconds,
        clock=clock,
    )
    approvals.listeners.append(built.decided)
    timers.on(SLACK_CLICK, built.on_click)
    return built
