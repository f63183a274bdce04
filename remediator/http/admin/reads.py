"""Read endpoints: status, playbooks, episodes (filtered, and one in full), pauses, approvals,
dead letters, the audit log. Any token may call them."""

from __future__ import annotations

import platform
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from remediator.engine.budgets import budget_view
from remediator.http.admin.common import Problem, engine, record, reply

EPISODE_STATES = ("firing", "resolved")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


async def status(request: web.Request) -> web.Response:
    eng = engine(request)
    breaker = await eng.governance.breaker()
    store, outbox = await eng.views.store_status()
    replicas = await eng.views.replicas() if store["ok"] else []
    return reply(
        {
            "mode": eng.settings.mode.value,
            "started": eng.started,
            "breaker": record(breaker) if breaker else None,
            "pauses": [record(s) for s in await eng.governance.switches()],
            "pending_approvals": len(await eng.governance.pending_approvals()),
            "queue": {"dispatch": eng.views.dispatch_depth, "outbox": outbox},
            "store": store,
            "playbooks": len(eng.registry),
            "versions": {
                "remediator": _version("remediator"),
                "python": platform.python_version(),
                "aiohttp": _version("aiohttp"),
                "slack_sdk": _version("slack_sdk"),
            },
            "replica": {"id": eng.replica, "name": eng.replica_name, "fenced": eng.fenced},
            "replicas": [record(r) for r in replicas],
        }
    )


async def breaker(request: web.Request) -> web.Response:
    """The open storm breaker (or the last one) with every alert it held."""
    eng = engine(request)
    found, count, held = await eng.governance.storm(_limit(request.query.get("limit")))
    return reply(
        {
            "breaker": record(found) if found else None,
            "open": found is not None and found.closed_at is None,
            "held_count": count,
            "held": [record(h) for h in held],
        }
    )


async def playbooks(request: web.Request) -> web.Response:
    eng = engine(request)
    await eng.governance.refresh_modes()
    out = []
    for spec in eng.registry:
        configured = eng.settings.playbook(spec.name)
        params = eng.params.get(spec.name)
        out.append(
            {
                "name": spec.name,
                "mode": eng.modes.of(spec.name).value,
                "configured_mode": eng.modes.configured(spec.name).value,
                "override": eng.modes.overridden(spec.name),
                "enabled": configured.enabled,
                "priority": spec.priority,
                "match": [str(m) for m in spec.matchers],
                "needs": sorted(spec.needs),
                "params": params.model_dump(mode="json") if params is not None else {},
                "budget": budget_view(spec, params, eng.settings),
            }
        )
    return reply({"playbooks": out})


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(422, f"since: {value!r} is not an ISO 8601 time") from None
    if since.tzinfo is None:
        raise Problem(422, "since: give a time zone (e.g. 2026-01-01T00:00:00Z)")
    return since


def _limit(value: str | None) -> int:
    if value is None:
        return 100
    try:
        limit = int(value)
    except ValueError:
        raise Problem(422, "limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise Problem(422, "limit must be between 1 and 1000")
    return limit


async def episodes(request: web.Request) -> web.Response:
    eng = engine(request)
    query = request.query
    state = query.get("state")
    if state is not None and state not in EPISODE_STATES:
        raise Problem(422, f"state must be one of {', '.join(EPISODE_STATES)}")
    playbook = query.get("playbook")
    if playbook is not None and eng.registry.get(playbook) is None:
        raise Problem(404, f"no playbook named {playbook!r} is loaded")
    found = await eng.views.episodes(
        status=state,
        alertname=query.get("alertname"),
        namespace=query.get("namespace"),
        playbook=playbook,
        since=_since(query.get("since")),
        limit=_limit(query.get("limit")),
    )
    return reply({"episodes": [record(e) for e in found]})


async def episode(request: web.Request) -> web.Response:
    episode_id = request.match_info["episode_id"]
    view = await engine(request).views.episode(episode_id)
    if view is None:
        raise Problem(404, f"no episode {episode_id!r}")
    return reply(
        {
            "episode": record(view.episode),
            "decisions": [record(d) for d in view.decisions],
            "runs": [record(r) for r in view.runs],
            "actions": [record(a) for a in view.actions],
            "calls": record(view.calls),
            "verifications": [record(v) for v in view.verifications],
            "approvals": [record(a) for a in view.approvals],
            "escalations": [record(e) for e in view.escalations],
            "reports": record(view.reports),
        }
    )


async def pauses(request: web.Request) -> web.Response:
    include = request.query.get("all", "false").lower() in ("1", "true", "yes")
    found = await engine(request).governance.switches(include_inactive=include)
    return reply({"pauses": [record(s) for s in found]})


async def approvals(request: web.Request) -> web.Response:
    found = await engine(request).governance.pending_approvals()
    return reply({"approvals": [record(a) for a in found]})


async def audit(request: web.Request) -> web.Response:
    found = await engine(request).governance.audit(_limit(request.query.get("limit")))
    return reply({"audit": [record(a) for a in found]})


async def dead_letters(request: web.Request) -> web.Response:
    eng = engine(request)
    channel = request.query.get("channel")
    if channel is not None and channel not in eng.outbox.channels:
        raise Problem(404, f"no outbox channel {channel!r} is configured")
    found = await eng.governance.dead_letters(channel, _limit(request.query.get("limit")))
    return reply({"dead_letters": [record(item) for item in found]})
