"""An admin-enabled daemon: a read token, an operator token, the fake Slack for reports."""

from __future__ import annotations

from typing import Any

from tests.conftest import Daemon

READ = "read-token-123456"
OPERATOR = "operator-token-123456"


def admin_config(**extra: Any) -> dict[str, Any]:
    return {
        "admin": {
            "tokens": [
                {"name": "viewer", "role": "read", "token": READ},
                {"name": "alice", "role": "operator", "token": OPERATOR},
            ]
        },
        **extra,
    }


async def call(
    daemon: Daemon,
    method: str,
    path: str,
    *,
    token: str | None = OPERATOR,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await daemon.client.request(method, path, json=json, params=params, headers=headers)
    return response.status, await response.json()
