"""The storm's one Slack message: posted when the breaker opens, then updated in place
(`chat.update`) with the count and the list of held alerts, and once more when it closes.

The breaker pages once; the alerts it holds have no run, no report and no escalation of their
own, so this message is where humans see the whole storm. An update is an outbox item on the
`slack_report` channel (it goes out in order, durably, after the opening message); at most
one is queued per breaker at a time, and it renders what the record holds when it is
delivered, so a storm of any size costs a handful of Slack calls. An incoming webhook cannot
edit a message: it gets the opening message only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from remediator.engine.delivery import slack_render
from remediator.engine.delivery.outbox import Outbox
from remediator.engine.delivery.report import SLACK_REPORT
from remediator.store import Store
from remediator.store.records import BreakerRecord
from remediator.store.storm_records import HeldAlert

STORM_UPDATE = "storm_update"  # outbox kind
_MAX_BLOCKS = 45  # Slack allows 50 blocks; room for the head and the tail
_LISTED = 2000  # held alerts read for one rendering


def breaker_id(key: str) -> int | None:
    """The breaker of a storm page's key (`storm-breaker-<id>`)."""
    prefix, _, number = key.rpartition("-")
    return int(number) if prefix == "storm-breaker" and number.isdigit() else None


def _line(alert: HeldAlert) -> str:
    target = alert.target_key
    if target.startswith(("unresolved/", "alert/")):
        target = "no target"
    where = f" ({alert.namespace})" if alert.namespace and "/" not in target else ""
    return f"• `{alert.alertname}` {target}{where}"


def render(
    breaker: BreakerRecord,
    count: int,
    held: list[HeldAlert],
    *,
    shadow: bool = False,
    mention: str = "",
    admin_url: str | None = None,
) -> slack_render.Message:
    """The storm message: what opened it, how many alerts it holds, and which."""
    if breaker.closed_at is not None:
        head = (
            f":white_check_mark: *Storm breaker closed* by {breaker.closed_by}: "
            f"{breaker.close_reason}. It held {count} alert(s); remediation goes on for new ones."
        )
    elif shadow:
        head = (
            f":ghost: *Would have escalated* (shadow mode): storm breaker open: {breaker.reason}. "
            f"{count} alert(s) held."
        )
    else:
        head = (
            f"{mention} :cyclone: *Storm breaker open*: {breaker.reason}. All remediation is "
            f"stopped until an operator closes it. {count} alert(s) held."
        ).strip()
    blocks: slack_render.Blocks = [slack_render._section(head)]
    by_kind = Counter(a.alertname for a in held)
    if by_kind:
        kinds = ", ".join(f"`{name}` {n}" for name, n in by_kind.most_common(10))
        blocks.append(slack_render._context(kinds))
    chunk: list[str] = []
    size = 0
    listed = 0
    for alert in held:
        line = _line(alert)
        if size + len(line) + 1 > slack_render._SECTION_LIMIT:
            if len(blocks) >= _MAX_BLOCKS:
                break
            blocks.append(slack_render._section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
        listed += 1
    if chunk and len(blocks) < _MAX_BLOCKS:
        blocks.append(slack_render._section("\n".join(chunk)))
    else:
        listed -= len(chunk)
    tail = f"… and {count - listed} more. " if count > listed else ""
    where = f"{admin_url.rstrip('/')}/admin/breaker" if admin_url else "GET /admin/breaker"
    blocks.append(slack_render._context(f"{tail}Every held alert: {where}"))
    fallback = head.replace("*", "")
    return slack_render._clip(fallback), blocks


class StormMessages:
    """Queues updates of the storm message (at most one waiting per breaker) and renders it."""

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        *,
        admin_url: str | None = None,
        page_in_shadow: bool = False,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._admin_url = admin_url
        self._page_in_shadow = page_in_shadow
        self._queued: set[int] = set()

    async def changed(self, breaker: BreakerRecord, _held: int = 0) -> None:
        """The breaker held more alerts, or closed: the message should say so."""
        if breaker.id in self._queued:
            return  # the queued update renders the record as it is when it goes out
        self._queued.add(breaker.id)
        document = {"event": STORM_UPDATE, "key": breaker.page_key, "breaker": breaker.id}
        await self._outbox.enqueue(SLACK_REPORT, breaker.page_key, STORM_UPDATE, document)

    def delivering(self, breaker: int) -> None:
        """An update is being rendered now: later changes need another one."""
        self._queued.discard(breaker)

    async def message(self, breaker_id: int, *, mention: str = "") -> slack_render.Message | None:
        breaker = await self._store.get_breaker(breaker_id)
        if breaker is None:
            return None
        # As the opening was escalated (engine/delivery/escalate.py): shadow mode does not page.
        shadow = breaker.details.get("mode") == "shadow" and not self._page_in_shadow
        count = await self._store.count_held(breaker.id)
        held = await self._store.held_alerts(breaker.id, _LISTED)
        return render(
            breaker, count, held, shadow=shadow, mention=mention, admin_url=self._admin_url
        )


def is_storm(document: dict[str, Any]) -> bool:
    return document.get("kind") == "storm" and breaker_id(str(document.get("key", ""))) is not None
