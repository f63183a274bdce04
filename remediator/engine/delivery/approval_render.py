"""A pending approval as a Slack message with Approve and Deny buttons, and the same message
once decided (the buttons replaced by who decided and when); a shadow run's report with a
"Run now" button, and the same once it was used.

The message is the run's report (engine/delivery/slack_render.py: what would be done, with the exact
change) plus what the guards said, the deadline and the buttons. Each button carries the run
id as its value; http/slack.py receives the click.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.engine.delivery import slack_render
from remediator.engine.delivery.report import APPROVAL_DECIDED, APPROVAL_REQUEST, RUN_NOW_TAKEN

APPROVE = "remediator_approve"  # action_id of the Approve button
DENY = "remediator_deny"
RUN_NOW = "remediator_run_now"  # on a shadow run's report: run it for real, once

# The reasons recorded for a click: nothing to add to "Approved by @alice".
APPROVED_IN_SLACK, DENIED_IN_SLACK = "approved in Slack", "denied in Slack"
SLACK_REASONS = (APPROVED_IN_SLACK, DENIED_IN_SLACK)

_DECISIONS = {
    "approved": ":white_check_mark: *Approved*",
    "denied": ":no_entry_sign: *Denied*",
    "expired": ":hourglass: *Expired*",
}


def clock(at: datetime) -> str:
    """A time as Slack shows it to each reader in their time zone; `03:12 UTC` as fallback."""
    return f"<!date^{int(at.timestamp())}^{{time}}|{at:%H:%M} UTC>"


def mention(slack_id: str) -> str:
    """A user (U..., W...) or user group (S...) ID as Slack mentions it."""
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75]}


def _buttons(run_id: int, target: str) -> dict[str, Any]:
    confirm = {
        "title": _plain("Approve this change?"),
        "text": {"type": "mrkdwn", "text": f"Run {run_id} acts on `{target}` now."},
        "confirm": _plain("Approve"),
        "deny": _plain("Cancel"),
    }
    return {
        "type": "actions",
        "block_id": f"approval-{run_id}",
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE,
                "text": _plain("Approve"),
                "style": "primary",
                "value": str(run_id),
                "confirm": confirm,
            },
            {
                "type": "button",
                "action_id": DENY,
                "text": _plain("Deny"),
                "style": "danger",
                "value": str(run_id),
            },
        ],
    }


def _waiting(document: dict[str, Any]) -> slack_render.Message:
    """The report and the guards' view, without buttons or decision."""
    text, blocks = slack_render.report(document)
    approval = document.get("approval") or {}
    guards = approval.get("guards") or []
    if guards:
        blocks.append(slack_render.section("*Guards*\n" + "\n".join(f"• {g}" for g in guards)))
    return text, blocks


def request(document: dict[str, Any]) -> slack_render.Message:
    """The run waits: what it would do, the guards' view, the deadline, the buttons."""
    text, blocks = _waiting(document)
    approval = document.get("approval") or {}
    expires = datetime.fromisoformat(approval["expires_at"])
    may = ", ".join(mention(i) for i in approval.get("approvers") or [])
    blocks.append(
        slack_render.context(
            f"Decide by {clock(expires)}; without a decision nothing is changed and the run is "
            "escalated. Every guard is checked again when it is approved."
            + (f" May decide: {may}" if may else "")
        )
    )
    blocks.append(_buttons(int(document["run_id"]), str(document.get("target") or "")))
    return f"{text} (decide by {expires:%H:%M} UTC)", blocks


def decided(document: dict[str, Any]) -> slack_render.Message:
    """The same message once decided: the buttons give way to the decision."""
    text, blocks = _waiting(document)
    decision = document.get("decision") or {}
    state = str(decision.get("state", ""))
    at = datetime.fromisoformat(decision["at"])
    who = slack_render.who_text(decision.get("who"))
    title = _DECISIONS.get(state, state)
    if state == "expired":
        line = f"{title} at {clock(at)}: {decision.get('reason') or 'no decision'}"
        fallback = f"expired at {at:%H:%M} UTC"
    else:
        line = f"{title} by {who} at {clock(at)}"
        fallback = f"{state} by {who} at {at:%H:%M} UTC"
        reason = str(decision.get("reason") or "")
        if reason and reason not in SLACK_REASONS:  # an operator's reason, or why it failed
            line += f": {reason}"
            fallback += f": {reason}"
    blocks.append(slack_render.section(line))
    return f"{text}: {fallback}", blocks


def run_now_offer(document: dict[str, Any]) -> slack_render.Message:
    """A shadow run's report, and the offer to run it for real now (through every guard)."""
    text, blocks = slack_render.report(document)
    run_id, episode = int(document["run_id"]), (document.get("episode") or {}).get("id", "")
    blocks.append(
        slack_render.context(
            "Shadow mode: nothing was changed. An approver may run the playbook now, for real, "
            "through every guard (once)."
        )
    )
    confirm = {
        "title": _plain("Run it for real now?"),
        "text": {"type": "mrkdwn", "text": f"Acts on `{document.get('target')}` now."},
        "confirm": _plain("Run now"),
        "deny": _plain("Cancel"),
    }
    button = {
        "type": "button",
        "action_id": RUN_NOW,
        "text": _plain("Run now"),
        "value": f"{run_id}:{episode}",
        "confirm": confirm,
    }
    blocks.append({"type": "actions", "block_id": f"run-now-{run_id}", "elements": [button]})
    return text, blocks


def run_now_taken(document: dict[str, Any]) -> slack_render.Message:
    """The shadow run's report once someone ran it now: who, when, and how it ended."""
    text, blocks = slack_render.report(document)
    taken = document.get("run_now") or {}
    at = datetime.fromisoformat(taken["at"])
    who = slack_render.who_text(taken.get("who"))
    outcome = f": {taken['state']} (episode `{taken['episode_id']}`)" if taken.get("state") else ""
    blocks.append(
        slack_render.section(f":arrow_forward: *Run now* by {who} at {clock(at)}{outcome}")
    )
    return f"{text}: run now by {who} at {at:%H:%M} UTC", blocks


def message(kind: str, document: dict[str, Any]) -> tuple[slack_render.Message, bool]:
    """The message for an outbox item of this kind, and whether it is the first one (posted;
    the others replace it)."""
    if kind == APPROVAL_REQUEST:
        return request(document), True
    if kind == APPROVAL_DECIDED:
        return decided(document), False
    if kind == RUN_NOW_TAKEN:
        return run_now_taken(document), False
    return run_now_offer(document), True
