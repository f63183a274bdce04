"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web

from remediator.engine.views import StoreUnavailable
from remediator.http.keys import ENGINE


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    problems = []
    if not engine.started:
        problems.append("engine not started")
    if engine.fenced:
        problems.append(f"replica fenced: {engine.fenced_reason}")
    if len(engine.registry) == 0:
        problems.append("no playbooks loaded")
    try:
        await engine.views.ping()
    except StoreUnavailable as exc:
        problems.append(f"store: {exc}")
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready", "playbooks": len(engine.registry)})
