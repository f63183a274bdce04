"""The daemon in this process on a loopback port, for `remediator replay` and `demo`.

The same `Engine`, app and server as `remediator serve`; only where it listens (127.0.0.1, a
free port) and how callers wait for it (`settle`) are its own.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Self

import aiohttp
from pydantic import BaseModel

from remediator.clock import Clock
from remediator.config import Settings
from remediator.engine.engine import Engine
from remediator.http.admin.auth import AdminTokens, Caller
from remediator.http.app import Server, build_app
from remediator.http.auth import Credentials
from remediator.playbook import Registry
from remediator_testing.servers import LOOPBACK

__all__ = ["LocalDaemon"]


class LocalDaemon:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        params: dict[str, BaseModel],
        *,
        port: int = 0,
        admin_token: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = Engine(settings, registry, params, clock=clock)
        self.token = secrets.token_urlsafe(24)
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        tokens = AdminTokens(((self.admin_token, Caller("operator", "operator")),))
        app = build_app(settings, self.engine, Credentials(bearer=self.token), tokens)
        self._server = Server(app, LOOPBACK, port)
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.port}"

    async def __aenter__(self) -> Self:
        await self._server.start()
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        await self._server.stop()

    async def post(self, body: bytes) -> tuple[int, Any]:
        """Deliver a notification the way Alertmanager does; the daemon's answer."""
        assert self._session is not None, "use LocalDaemon as an async context manager"
        async with self._session.post(
            f"{self.url}/webhook",
            data=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        ) as answer:
            text = await answer.text()
            return answer.status, text

    async def settle(self, timeout_s: float = 120.0) -> None:
        """Until everything received is digested and every run it started has finished."""

        async def quiet() -> None:
            await asyncio.sleep(0)
            await self.engine.digester.drained()
            await self.engine.dispatcher.drained()

        await asyncio.wait_for(quiet(), timeout_s)
