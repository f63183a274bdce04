"""Slack through slack_sdk's AsyncWebClient: post a message (optionally in a thread), replace
one (`chat.update`), read a user group's members, answer a button click through its
`response_url`; or through an incoming webhook (no threads, no `ts`).

Kept small on purpose: escalations use `post`, reports build threads on it. slack_sdk's own
retries are off; the outbox retries (and honours 429 Retry-After) durably instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from remediator.clients.delivery import DeliveryError, post_json, rejected, retry_after

# Slack `ok: false` errors that say "try again later"; every other error code (invalid_auth,
# channel_not_found, is_archived, invalid_blocks, msg_too_long, ...) refuses the message itself.
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "request_timeout",
        "service_unavailable",
        "internal_error",
        "fatal_error",
        "team_added_to_org",
    }
)


def permanent(status: int, error: str | None) -> bool:
    """Whether Slack refused this message for good (see TRANSIENT_ERRORS)."""
    if status >= 500 or status == 429:
        return False
    if status == 200:  # `ok: false` with an error code
        return (error or "") not in TRANSIENT_ERRORS
    return rejected(status)


class SlackClient:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = AsyncWebClient.BASE_URL,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=max(1, round(timeout)),
            session=session,
            retry_handlers=[],
        )

    async def post(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: Sequence[dict[str, Any]] | None = None,
        reply_broadcast: bool = False,
    ) -> str:
        """Post `text` (the fallback when `blocks` are given); return the message's `ts` (the
        thread id for replies)."""
        extra: dict[str, Any] = {"reply_broadcast": True} if reply_broadcast else {}
        async with _errors():
            response = await self._client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts, blocks=blocks, **extra
            )
        return str(response.get("ts", ""))

    async def update(
        self, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]]
    ) -> None:
        """Replace the message `ts` (`chat.update`), e.g. its buttons by the decision."""
        async with _errors():
            await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def usergroup_members(self, usergroup: str) -> list[str]:
        """The user IDs in a user group (`usergroups.users.list`, scope `usergroups:read`)."""
        async with _errors():
            response = await self._client.usergroups_users_list(usergroup=usergroup)
        users = response.get("users")
        return [str(u) for u in users] if isinstance(users, list) else []


@asynccontextmanager
async def _errors() -> AsyncIterator[None]:
    """slack_sdk's and aiohttp's failures as one DeliveryError (with Retry-After on 429)."""
    try:
        yield
    except SlackApiError as exc:
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        raise DeliveryError(
            f"Slack HTTP {status}: {error or exc}",
            status=status,
            retry_after=retry_after(exc.response.headers) if status == 429 else None,
            permanent=permanent(status, error),
        ) from exc
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    except TimeoutError as exc:
        raise DeliveryError("Slack did not answer in time") from exc


async def respond(
    session: aiohttp.ClientSession, response_url: str, text: str, *, timeout_seconds: float = 10.0
) -> None:
    """An ephemeral answer to the user who clicked, through the interaction's `response_url`
    (only they see it; the message with the buttons stays as it is)."""
    payload = {"response_type": "ephemeral", "replace_original": False, "text": text}
    try:
        await post_json(session, response_url, payload, timeout_seconds=timeout_seconds)
    except DeliveryError as exc:
        # The URL lets anyone post as the app for 30 minutes: keep it out of logs.
        raise DeliveryError(
            str(exc).replace(response_url, "<response_url>"), status=exc.status
        ) from None


class SlackWebhookClient:
    """An incoming webhook: POST `{text, blocks}`; Slack answers 200 `ok` (or 429)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout: float = 10.0) -> None:
        self._session = session
        self._url = url
        self._timeout = timeout

    async def post(self, text: str, *, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        payload: dict[str, Any] = {"text": text}
        if blocks:
            payload["blocks"] = list(blocks)
        try:
            await post_json(self._session, self._url, payload, timeout_seconds=self._timeout)
        except DeliveryError as exc:
            # The URL is the secret: never let it reach a log line or the outbox's last_error.
            raise DeliveryError(
                str(exc).replace(self._url, "<webhook url>"),
                status=exc.status,
                retry_after=exc.retry_after,
                permanent=exc.permanent,
            ) from None
