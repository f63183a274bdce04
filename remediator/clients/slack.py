"""Slack through slack_sdk's AsyncWebClient: post a message (optionally in a thread).

Kept small on purpose: escalations use `post`, reports build threads on it. slack_sdk's own
retries are off; the outbox retries (and honours 429 Retry-After) durably instead.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from remediator.clients.delivery import DeliveryError, retry_after


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

    async def post(self, channel: str, text: str, *, thread_ts: str | None = None) -> str:
        """Post `text`; return the message's `ts` (the thread id for replies)."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            raise DeliveryError(
                f"Slack HTTP {status}: {error or exc}",
                status=status,
                retry_after=retry_after(exc.response.headers) if status == 429 else None,
            ) from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise DeliveryError("Slack did not answer in time") from exc
        return str(response.get("ts", ""))
