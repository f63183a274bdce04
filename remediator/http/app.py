"""Builds the aiohttp application and runs it as one supervised unit.

The engine lives in the app's `cleanup_ctx`, so it starts before the first request is served
and stops after the last; tests drive the same app through `aiohttp_client`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from slack_sdk.signature import SignatureVerifier

from remediator.config import Settings
from remediator.engine.engine import Engine
from remediator.http import health, slack, webhook
from remediator.http.admin import admin_app
from remediator.http.admin.auth import AdminTokens
from remediator.http.auth import Credentials
from remediator.http.keys import ENGINE, SETTINGS, SLACK_VERIFIER, WEBHOOK_CREDENTIALS
from remediator.http.ui import ui_app


def build_app(
    settings: Settings,
    engine: Engine,
    credentials: Credentials,
    admin_tokens: AdminTokens | None = None,
) -> web.Application:
    """`admin_tokens` default to the configured ones (`admin.tokens`; raises ConfigError when
    a token file, or the Slack signing secret's file, cannot be read)."""
    # aiohttp enforces the body limit while reading, so a huge body is never held in memory.
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[WEBHOOK_CREDENTIALS] = credentials
    app.router.add_post("/webhook", webhook.receive)
    app.router.add_post("/", webhook.receive)  # Alertmanager is often pointed at / by mistake
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(engine.metrics.registry))
    secret = settings.approval.slack.secret()
    if secret:
        app[SLACK_VERIFIER] = SignatureVerifier(secret)
        app.router.add_post("/slack/interactions", slack.interactions)
    tokens = admin_tokens if admin_tokens is not None else AdminTokens.from_settings(settings.admin)
    app.add_subapp("/admin/", admin_app(tokens))
    app.add_subapp("/ui/", ui_app(tokens))
    app.router.add_get("/ui", _to_ui)

    async def engine_lifetime(app: web.Application) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app.cleanup_ctx.append(engine_lifetime)
    return app


async def _to_ui(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/ui/")


class Server:
    """The daemon's HTTP server: `start()` returns once listening, `stop()` tears down."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port, when 0 was asked

    async def stop(self) -> None:
        await self._runner.cleanup()
