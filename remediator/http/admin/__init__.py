"""The admin API under /admin/: read the record, steer the daemon (see openapi.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from remediator.engine.governance.api import GovernanceError
from remediator.engine.views import StoreUnavailable
from remediator.http.admin import actions, incidents, reads
from remediator.http.admin.auth import AdminTokens
from remediator.http.admin.common import ADMIN_TOKENS, CALLER, Problem, error, reply
from remediator.http.admin.openapi import SPEC
from remediator.logs import get_logger

log = get_logger(component="admin")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = {"/admin/openapi.json"}


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, authorise, and turn every failure into a JSON answer (never a 500 for
    what the client sent)."""
    if request.path not in PUBLIC:
        found = request.config_dict[ADMIN_TOKENS].caller(request.headers.get("Authorization"))
        if found is None:
            response = error(401, "missing or wrong admin token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="remediator-admin"'
            return response
        if request.method not in ("GET", "HEAD") and not found.may_mutate:
            return error(403, f"token {found.name!r} is read-only; this needs an operator token")
        request[CALLER] = found
    try:
        return await handler(request)
    except Problem as problem:
        return error(problem.status, problem.message, **problem.extra)
    except GovernanceError as exc:
        # The request conflicts with the record's state (already lifted, already decided...).
        return error(409, str(exc))
    except web.HTTPException as exc:
        answer = error(exc.status, exc.reason)
        if "Allow" in exc.headers:
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    except StoreUnavailable as exc:
        return error(503, f"the store is unavailable: {exc}")
    except Exception:
        log.exception("admin request failed", path=request.path)
        return error(500, "internal error (logged)")


async def _openapi(request: web.Request) -> web.Response:
    return reply(SPEC)


def admin_app(tokens: AdminTokens) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[ADMIN_TOKENS] = tokens
    r = app.router
    r.add_get("/openapi.json", _openapi)
    r.add_get("/status", reads.status)
    r.add_get("/playbooks", reads.playbooks)
    r.add_post("/playbooks/{name}/mode", actions.set_mode)
    r.add_get("/episodes", reads.episodes)
    r.add_get("/episodes/{episode_id}", reads.episode)
    r.add_post("/episodes/{episode_id}/resend-report", actions.resend_report)
    r.add_get("/pauses", reads.pauses)
    r.add_post("/pauses", actions.pause)
    r.add_post("/pauses/{switch_id}/resume", actions.resume)
    r.add_get("/breaker", reads.breaker)
    r.add_post("/breaker/close", actions.close_breaker)
    r.add_get("/approvals", reads.approvals)
    r.add_post("/approvals/{run_id}/approve", actions.approve)
    r.add_post("/approvals/{run_id}/deny", actions.deny)
    r.add_post("/runs", actions.run)
    r.add_get("/dead-letters", reads.dead_letters)
    r.add_post("/dead-letters/{item_id}/resend", actions.resend_dead_letter)
    r.add_get("/audit", reads.audit)
    r.add_get("/incidents", incidents.incidents)
    r.add_get("/incidents/{incident_id}", incidents.incident)
    r.add_post("/incidents/{incident_id}/clear", incidents.clear)
    return app
