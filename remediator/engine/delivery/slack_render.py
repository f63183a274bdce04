"""Report documents as Slack messages: Block Kit for structure plus a plain-text fallback.

Slack shows `text` in notifications and to clients without Block Kit, so the fallback says the
same thing in fewer words. Limits Slack enforces are respected here (a section's text is at
most 3000 characters, at most 50 blocks), so a big evidence value cannot make a post fail.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from remediator.playbook.changes import PODS, SESSIONS, WORKLOAD_REPLICAS

Blocks = list[dict[str, Any]]
Message = tuple[str, Blocks]

_SECTION_LIMIT = 2900
_VALUE_LIMIT = 400
_MAX_LABELS = 10
_HIDDEN_LABELS = {"alertname", "severity", "remediator_manual"}

_STATE_LINES = {
    "acted": ":white_check_mark: *Acted*",
    "shadow": ":eyes: *Shadow mode: would have*",
    "pending_approval": ":raised_hand: *Waiting for approval: would*",
    "noop": ":zzz: *Nothing to do*",
    "refused": ":no_entry: *Refused*",
    "failed": ":x: *Failed*",
    "interrupted": ":warning: *Interrupted by a restart*",
    "held": ":pause_button: *Held: part of an escalated incident, nothing done*",
}
_VERIFICATION_LINES = {
    "verified": ":white_check_mark: *Verified*",
    "not_verified": ":x: *Not verified*",
    "unknown": ":grey_question: *Verification unknown*",
}


def _clip(text: str, limit: int = _SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text)}]}


section, context = _section, _context  # for engine/delivery/approval_render.py


def who_text(who: Any) -> str:
    """Who decided: a Slack user (`slack:U123`) as a mention Slack shows by name."""
    text = str(who or "someone")
    return f"<@{text[6:]}>" if text.startswith("slack:") else text


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return _clip(text, _VALUE_LIMIT)


def change_text(change: dict[str, Any]) -> str:
    """`replicas 3 → 5`, `1 pod` (`1 pod of 3 replicas`), `4 sessions`; anything else as
    `key: value`."""
    parts = []
    of = change.get(WORKLOAD_REPLICAS)
    for key, value in change.items():
        if key == WORKLOAD_REPLICAS and PODS in change:
            continue  # said with the pods
        if isinstance(value, list) and len(value) == 2:
            parts.append(f"{key} {value[0]} → {value[1]}")
        elif key in (PODS, SESSIONS) and isinstance(value, int):
            part = f"{value} {key[:-1] if value == 1 else key}"
            parts.append(part + (f" of {of} replicas" if key == PODS and of is not None else ""))
        else:
            parts.append(f"{key}: {_value(value)}")
    return ", ".join(parts)


def _what_fired(episode: dict[str, Any]) -> tuple[str, str]:
    labels = episode.get("labels") or {}
    shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _HIDDEN_LABELS]
    more = len(shown) - _MAX_LABELS
    label_text = ", ".join(f"`{s}`" for s in shown[:_MAX_LABELS])
    if more > 0:
        label_text += f" (+{more} more)"
    severity = f" ({episode['severity']})" if episode.get("severity") else ""
    title = f"{episode.get('alertname', 'alert')}{severity}"
    return title, label_text


def header(episode: dict[str, Any], playbook: str | None, mode: str | None) -> Message:
    """The thread's first message: the alert was taken up."""
    title, label_text = _what_fired(episode)
    manual = " (run by hand)" if episode.get("manual") else ""
    taken = f"taken up by `{playbook}`" if playbook else "taken up"
    lines = [f":robot_face: *{title}* {taken}{manual}" + (f" [{mode}]" if mode else "")]
    if episode.get("summary"):
        lines.append(str(episode["summary"]))
    if label_text:
        lines.append(label_text)
    links = [f"episode `{episode.get('id')}`"]
    if episode.get("generator_url"):
        links.append(f"<{episode['generator_url']}|Prometheus>")
    if episode.get("truncated"):
        links.append(":warning: Alertmanager truncated the notification (alerts missing)")
    blocks = [_section("\n".join(lines)), _context(" · ".join(links))]
    text = f"{title} {taken}{manual}: {label_text.replace('`', '')}".strip()
    return text, blocks


def _actions_text(actions: Sequence[dict[str, Any]], would: bool) -> list[str]:
    lines = []
    for action in actions:
        change = change_text(action.get("change") or {})
        state = "" if would else f" _{action.get('state')}_"
        line = f"• {action.get('summary')}{f' ({change})' if change else ''}{state}"
        if action.get("error"):
            line += f": {action['error']}"
        lines.append(line)
    return lines


def report(document: dict[str, Any]) -> Message:
    """One step of the episode: a run's outcome, a verification, a revert, the resolution."""
    kind = str(document.get("kind", ""))
    state = str(document.get("state") or "")
    where = f" `{document['target']}`" if document.get("target") else ""
    lines: list[str] = []
    if kind == "verification":
        verification = document.get("verification") or {}
        result = str(verification.get("result", "unknown"))
        lines.append(f"{_VERIFICATION_LINES.get(result, result)}{where}")
        if verification.get("detail"):
            lines.append(str(verification["detail"]))
        if verification.get("query"):
            lines.append(f"`{_clip(str(verification['query']), 500)}`")
    elif kind == "resolved":
        took = document.get("seconds_to_resolve")
        lines.append(":large_green_circle: *Resolved*" + (f" after {took:.0f} s" if took else ""))
    elif kind in ("reverted", "follow_up"):
        title = "Reverted after the alert resolved" if kind == "reverted" else "Follow-up step"
        would = document.get("mode") != "auto"
        lines.append(f":leftwards_arrow_with_hook: *{title}*{' (dry run)' if would else ''}")
    elif kind == "undone":
        lines.append(f":warning: *The change did not stick*{where}")
    elif kind == "resumed":
        lines.append(f":arrow_forward: *GitOps reconciliation restored*{where}")
    elif state == "noop" and document.get("escalated"):
        lines.append(f":raised_hand: *Nothing changed: a human is needed*{where}")
    else:
        lines.append(f"{_STATE_LINES.get(state, state)}{where}")
    shadow = state in ("shadow", "pending_approval") or (
        kind in ("reverted", "follow_up") and document.get("mode") != "auto"
    )
    lines += _actions_text(document.get("actions") or [], would=shadow)
    if document.get("reason"):
        lines.append(str(document["reason"]))
    if document.get("error"):
        lines.append(f"reason: {document['error']}")
    elif document.get("escalated"):
        lines.append(f"reason: {document['escalated']}")
    approved = document.get("approved_by")
    if approved:
        lines.append(f"approved by {who_text(approved.get('who'))}: {approved.get('reason')}")
    blocks: Blocks = [_section("\n".join(lines))]
    evidence = document.get("evidence") or {}
    if evidence:
        shown = [f"*{key}*: `{_value(value)}`" for key, value in evidence.items()]
        blocks.append(_section("*Evidence*\n" + "\n".join(shown)))
    facts = [
        f"{name} `{document[key]}`"
        for name, key in (("playbook", "playbook"), ("run", "run_id"), ("mode", "mode"))
        if document.get(key) is not None
    ]
    if document.get("resent"):
        facts.append("re-sent")
    if facts:
        blocks.append(_context(" · ".join(facts)))
    text = " ".join(line.replace("*", "") for line in lines[:3])
    return _clip(text), blocks


_PROGRESS_MARKS = {"intent": ":hourglass_flowing_sand:", "succeeded": ":heavy_check_mark:"}
_STEPS = {"revert": " (revert)", "follow_up": " (follow-up)"}


def progress(document: dict[str, Any]) -> Message:
    """One step of a run in flight: an action about to be made, or its outcome."""
    action = document.get("action") or {}
    state = "intent" if document.get("stage") == "intent" else str(action.get("state"))
    change = change_text(action.get("change") or {})
    line = f"{_PROGRESS_MARKS.get(state, ':x:')} {action.get('summary')}"
    line += f" ({change})" if change else ""
    line += "…" if state == "intent" else f" _{state}_"
    if action.get("error"):
        line += f": {action['error']}"
    line += _STEPS.get(str(document.get("step")), "")
    return _clip(line.replace("*", "")), [_context(line)]


def escalation(document: dict[str, Any], mention: str = "") -> Message:
    """An escalation as a reply in the episode's thread (broadcast to the channel)."""
    reason = str(document.get("reason", "escalation"))
    if document.get("shadow"):  # shadow mode reports what it would have done; nobody is called
        mention = ""
        line = f":ghost: *Would have escalated* (shadow mode): {reason}"
    else:
        line = f"{mention} :rotating_light: *Escalated*: {reason}".strip()
    facts = [
        f"{name} `{document[key]}`"
        for name, key in (("playbook", "playbook"), ("target", "target"), ("run", "run_id"))
        if document.get(key) is not None
    ]
    blocks: Blocks = [_section(line)]
    if facts:
        blocks.append(_context(" · ".join(facts)))
    word = "Would have escalated" if document.get("shadow") else "Escalated"
    return _clip(f"{mention} {word}: {reason}".strip()), blocks


def standalone(document: dict[str, Any]) -> Message:
    """Header and step in one message, for an incoming webhook (no threads)."""
    episode = document.get("episode") or {}
    head_text, head_blocks = header(episode, document.get("playbook"), document.get("mode"))
    body_text, body_blocks = report(document)
    return _clip(f"{head_text}\n{body_text}"), [*head_blocks, {"type": "divider"}, *body_blocks]


def summary(documents: Sequence[dict[str, Any]], admin_url: str | None) -> Message:
    """Many reports at once (an alert storm) as one message: counts, not a hundred posts."""
    groups: Counter[tuple[str, str]] = Counter()
    states: dict[tuple[str, str], Counter[str]] = {}
    for doc in documents:
        episode = doc.get("episode") or {}
        key = (
            str(episode.get("alertname") or doc.get("alertname") or "escalation"),
            str((episode.get("labels") or doc.get("labels") or {}).get("namespace", "-")),
        )
        groups[key] += 1
        states.setdefault(key, Counter())[str(doc.get("state") or doc.get("kind") or "")] += 1
    episodes = len({(d.get("episode") or {}).get("id") or d.get("key") for d in documents})
    title = f":cyclone: *Alert storm: {len(documents)} reports for {episodes} episodes*"
    lines = []
    for (alertname, namespace), count in groups.most_common(20):
        detail = ", ".join(f"{s} {n}" for s, n in states[(alertname, namespace)].most_common())
        lines.append(f"• `{alertname}` in `{namespace}`: {count} ({detail})")
    if len(groups) > 20:
        lines.append(f"… and {len(groups) - 20} more groups")
    blocks: Blocks = [_section(title), _section("\n".join(lines) or "-")]
    if admin_url:
        link = f"{admin_url.rstrip('/')}/admin/episodes"
        details = f"Details: <{link}|admin API episodes> or `remediator admin episodes`"
        blocks.append(_context(details))
    text = f"Alert storm: {len(documents)} reports for {episodes} episodes"
    return text, blocks
