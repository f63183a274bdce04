"""What every outgoing channel (PagerDuty, the generic webhook, Slack) reports when it fails.

The outbox (engine/delivery/outbox.py) only needs to know that a delivery failed, why, whether the
receiver said when to try again (429 / 503 with Retry-After), and whether trying again can ever
help: a 4xx other than 408/425/429 says the receiver refuses this message as it is (bad request,
bad credentials, unknown channel), so the outbox dead-letters it instead of letting it block
the messages behind it. Each channel client turns its own errors into one `DeliveryError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

# 4xx answers that mean "not now" rather than "never": timeout, too early, too many requests.
_TRANSIENT_4XX = frozenset({408, 425, 429})


def rejected(status: int | None) -> bool:
    """The receiver refused the message itself: retrying the same request cannot succeed."""
    return status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX


class DeliveryError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        # None: decided by the HTTP status; a client that knows better (Slack's `ok: false`
        # errors arrive with HTTP 200) says so.
        self.permanent = rejected(status) if permanent is None else permanent


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout_seconds: float,
) -> int:
    """POST JSON; return the 2xx status, or raise DeliveryError (with Retry-After if given)."""
    try:
        async with session.post(
            url,
            json=payload,
            headers=dict(headers or {}),
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            if 200 <= response.status < 300:
                return response.status
            text = (await response.text(errors="replace"))[:300]
            raise DeliveryError(
                f"HTTP {response.status}: {text}",
                status=response.status,
                retry_after=retry_after(response.headers),
            )
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    except TimeoutError as exc:
        raise DeliveryError(f"no answer within {timeout_seconds:g} s") from exc
