"""Delivery of the `slack_report` outbox channel: threads, storm summaries, no secrets.

Bot token: the first message of an episode is the header (what fired), posted top-level; its
`ts` is stored durably, and every later report or escalation of the episode is a reply in that
thread, after a restart too. Incoming webhook: one message per report (Slack gives no `ts`).

An alert storm must not become a hundred posts: a report waits `batch_window_seconds` in the
outbox (see `Outbox` holds), and when more than `batch_threshold` reports of the channel are
waiting by then, or several while the storm breaker is open, they go out as one summary.

A run in flight posts its steps (engine/delivery/progress.py) in its thread as it goes: they
are folded into a storm summary with the reports around them, and are not posted while more than
`batch_threshold` messages wait (a storm) or without a bot token (an incoming webhook has no
threads; the run's report says it all).

Every payload passes through `Scrubber`: configured secrets (tokens, keys, DSNs) are replaced
before anything leaves the process, whatever a label or an evidence value contained.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from remediator.clients.slack import SlackClient, SlackWebhookClient
from remediator.clock import Clock
from remediator.config import ConfigError, ReportSettings, Settings
from remediator.engine.delivery import approval_render, slack_render
from remediator.engine.delivery.escalate import ESCALATION
from remediator.engine.delivery.progress import PROGRESS, STARTED
from remediator.engine.delivery.report import (
    APPROVAL_DECIDED,
    APPROVAL_REQUEST,
    REPORT,
    RUN_NOW_TAKEN,
    SLACK_REPORT,
    episode_document,
)
from remediator.engine.delivery.storm_report import (
    STORM_UPDATE,
    StormMessages,
    breaker_id,
    is_storm,
)
from remediator.logs import get_logger
from remediator.store import Store
from remediator.store.records import OutboxItem

_ANY_TIME = datetime(9999, 1, 1, tzinfo=UTC)
_BATCH_SCAN = 5000  # waiting reports looked at for one summary


def secret_values(settings: Settings) -> list[str]:
    """Every secret the configuration holds, as the strings a payload must never contain."""
    found: list[str | None] = []
    readers = [
        settings.webhook.auth.bearer,
        lambda: (settings.webhook.auth.basic() or ("", ""))[1],
        settings.prometheus.bearer,
        settings.escalation.slack.token_value,
        settings.escalation.pagerduty.key,
        settings.escalation.webhook.bearer,
        settings.reports.slack.token_value,
        settings.reports.slack.webhook_value,
        settings.approval.slack.secret,
        *(token.value for token in settings.admin.tokens),
    ]
    for read in readers:
        try:
            found.append(read())
        except ConfigError:
            continue
    for database in settings.databases.values():
        try:
            dsn = database.dsn_value()
        except ConfigError:
            continue
        found += [dsn, urlsplit(dsn).password]
    # Short strings would redact ordinary words; nobody configures a 5-character secret.
    return sorted({s for s in found if s and len(s) >= 6}, key=len, reverse=True)


class Scrubber:
    def __init__(self, secrets: list[str]) -> None:
        self._secrets = secrets

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, "[redacted]")
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value


class SlackReportDelivery:
    """The `slack_report` channel's deliver callable (see engine/delivery/outbox.py)."""

    def __init__(
        self,
        settings: ReportSettings,
        store: Store,
        session: aiohttp.ClientSession,
        scrub: Scrubber,
        *,
        mention: str = "",
        clock: Clock,
    ) -> None:
        slack = settings.slack
        self._clock = clock
        self._settings = settings
        self._store = store
        self._scrub = scrub
        self._mention = mention
        self._channel = slack.channel or ""
        self._bot: SlackClient | None = None
        self._hook: SlackWebhookClient | None = None
        if slack.channel:
            self._bot = SlackClient(
                slack.token_value() or "",
                base_url=slack.base_url,
                timeout=slack.timeout_seconds,
                session=session,
            )
        else:
            self._hook = SlackWebhookClient(
                session, slack.webhook_value() or "", timeout=slack.timeout_seconds
            )
        self._log = get_logger(component="slack_reports")
        # The storm breaker's one message, posted and then updated (delivery/storm_report.py).
        self.storm: StormMessages | None = None

    def hold(self, item: OutboxItem) -> float:
        """Seconds a queued report waits before delivery, so a storm can be summarised."""
        waits = item.kind in (REPORT, STORM_UPDATE)
        return self._settings.batch_window_seconds if waits else 0.0

    async def __call__(self, item: OutboxItem) -> None:
        if item.kind == REPORT:
            batch, folded = await self._storm(item)
            if batch:
                await self._summary(item, batch, folded)
                return
            if item.payload.get("run_now"):
                await self._approval(item)  # a shadow run's report with "Run now"
            else:
                await self._report(item)
        elif item.kind == PROGRESS:
            await self._progress(item)
        elif item.kind == ESCALATION and self.storm is not None and is_storm(item.payload):
            await self._storm_message(item, update=False)
        elif item.kind == ESCALATION:
            await self._escalation(item)
        elif item.kind == STORM_UPDATE and self.storm is not None:
            await self._storm_message(item, update=True)
        elif item.kind in (APPROVAL_REQUEST, APPROVAL_DECIDED, RUN_NOW_TAKEN):
            await self._approval(item)
        # Anything else (a PagerDuty-style resolve) has nothing to say in Slack.

    async def _post(
        self,
        message: slack_render.Message,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> str | None:
        text, blocks = self._scrub(message[0]), self._scrub(message[1])
        if self._bot is not None:
            return await self._bot.post(
                self._channel, text, thread_ts=thread_ts, blocks=blocks, reply_broadcast=broadcast
            )
        assert self._hook is not None
        await self._hook.post(text, blocks=blocks)
        return None

    async def _thread(self, episode_id: str | None, document: dict[str, Any]) -> str | None:
        """The episode's thread, started with the header if it has none yet (e.g. its reports
        went out in a storm summary, or an escalation comes before any report)."""
        if self._bot is None or episode_id is None:
            return None
        thread = await self._store.report_thread(episode_id)
        if thread is not None:
            return thread
        # A report carries the episode as the header shows it; an escalation only its id.
        episode = document.get("episode")
        if not isinstance(episode, dict):
            record = await self._store.get_episode(episode_id)
            if record is None:
                return None  # a system-wide escalation (the storm breaker): top-level
            episode = episode_document(record)
        message = slack_render.header(episode, document.get("playbook"), document.get("mode"))
        ts = await self._post(message)
        if ts:
            await self._store.set_report_thread(episode_id, self._channel, ts)
        return ts

    async def _report(self, item: OutboxItem) -> None:
        document = item.payload
        if self._bot is None:
            await self._post(slack_render.standalone(document))
            return
        thread = await self._thread(item.episode_id, document)
        await self._post(slack_render.report(document), thread_ts=thread)

    async def _progress(self, item: OutboxItem) -> None:
        if self._bot is None:
            return
        waiting = (await self._store.outbox_pending()).get(SLACK_REPORT, 0)
        if waiting > self._settings.batch_threshold:
            self._log.info("progress note not posted: a storm is waiting", item=item.id)
            return
        thread = await self._thread(item.episode_id, item.payload)
        if item.payload.get("stage") == STARTED:
            return  # the thread's header says the alert was taken up
        await self._post(slack_render.progress(item.payload), thread_ts=thread)

    async def _escalation(self, item: OutboxItem) -> None:
        message = slack_render.escalation(item.payload, self._mention)
        if self._bot is None:
            await self._post(message)
            return
        thread = await self._thread(item.episode_id, item.payload)
        await self._post(message, thread_ts=thread, broadcast=thread is not None)

    async def _approval(self, item: OutboxItem) -> None:
        """A run's report with buttons (approve mode, or "Run now" in shadow mode), or its
        update once they were used (see engine/delivery/approval_render.py)."""
        document, run_id = item.payload, int(item.payload["run_id"])
        if self._bot is None:
            if item.kind == REPORT:
                await self._report(item)
            return  # buttons need the bot token (checked when the settings are loaded)
        posted = await self._store.approval_message(run_id)
        message, first = approval_render.message(item.kind, document)
        if first and posted is None:  # else: delivered again after a restart, or re-sent
            thread = await self._thread(item.episode_id, document)
            # A decision is waited for: shown in the channel too, like an escalation.
            broadcast = thread is not None and item.kind == APPROVAL_REQUEST
            ts = await self._post(message, thread_ts=thread, broadcast=broadcast)
            if ts:
                await self._store.set_approval_message(run_id, self._channel, ts)
            return
        if posted is not None:
            text, blocks = self._scrub(message[0]), self._scrub(message[1])
            await self._bot.update(posted[0], posted[1], text, blocks)

    async def _storm_message(self, item: OutboxItem, *, update: bool) -> None:
        """The storm's one message: posted when the breaker opens, then edited in place."""
        assert self.storm is not None
        number = breaker_id(str(item.payload.get("key", "")))
        if number is None:
            return
        if update:
            self.storm.delivering(number)
        message = await self.storm.message(number, mention=self._mention)
        if message is None:
            return
        ts = await self._store.report_thread(item.episode_id) if item.episode_id else None
        if ts is None or self._bot is None:
            if update and self._bot is None:
                return  # an incoming webhook cannot edit: it got the opening message
            ts = await self._post(message)
            if ts and item.episode_id:
                await self._store.set_report_thread(item.episode_id, self._channel, ts)
            return
        text, blocks = self._scrub(message[0]), self._scrub(message[1])
        await self._bot.update(self._channel, ts, text, blocks)

    async def _storm(self, head: OutboxItem) -> tuple[list[OutboxItem], list[OutboxItem]]:
        """The waiting reports to summarise with the head, and the progress notes among them
        (folded into the summary, not posted); ([], []) to send the head alone."""
        waiting = await self._store.due_outbox(SLACK_REPORT, _ANY_TIME, _BATCH_SCAN)
        window = timedelta(seconds=self._settings.batch_window_seconds)
        batch: list[OutboxItem] = []
        folded: list[OutboxItem] = []
        for item in waiting:
            if item.kind not in (REPORT, PROGRESS) or item.created_at > head.created_at + window:
                break  # keep the order: an escalation is never folded into a summary
            (batch if item.kind == REPORT else folded).append(item)
        if len(batch) > self._settings.batch_threshold:
            return batch, folded
        if len(batch) > 1 and await self._breaker_open():
            return batch, folded
        return [], []

    async def _breaker_open(self) -> bool:
        breaker = await self._store.current_breaker()
        return breaker is not None and breaker.open_at(self._clock.now())

    async def _summary(
        self, head: OutboxItem, batch: list[OutboxItem], folded: list[OutboxItem]
    ) -> None:
        documents = [item.payload for item in batch]
        await self._post(slack_render.summary(documents, self._settings.admin_url))
        at = self._clock.now()
        for item in [*batch, *folded]:
            if item.id != head.id:  # the outbox marks the head itself
                await self._store.outbox_delivered(item.id, at)
        self._log.info("storm summary", reports=len(batch))
