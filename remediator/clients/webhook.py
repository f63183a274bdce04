"""The generic escalation webhook: one JSON document POSTed per escalation or resolution.

For receivers we do not know (an incident tool, a chat bridge, a ticket system): the document
is the escalation as recorded (see engine/delivery/escalate.py for its fields). Any 2xx is success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from remediator.clients.delivery import post_json


class WebhookClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        bearer: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._url = url
        self._headers = dict(headers or {})
        if bearer:
            self._headers["Authorization"] = f"Bearer {bearer}"
        self._timeout = timeout

    async def post(self, document: Mapping[str, Any]) -> None:
        await post_json(
            self._session, self._url, document, headers=self._headers, timeout_seconds=self._timeout
        )
