"""The handlers of the episode pages: the timeline, one episode, governance, approvals.

Every page reads through the same engine objects as the admin API (`Governance`, the episode
view), and approve/deny go through `Governance.approve`/`deny`, the admin API's own path, so
the guards are re-checked exactly as they are there.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from remediator.engine.engine import Engine
from remediator.engine.governance.api import GovernanceError
from remediator.engine.views import AuditRecord, EpisodeView
from remediator.http.admin.auth import Caller
from remediator.http.keys import ENGINE
from remediator.http.ui.render import page
from remediator.http.ui.sessions import Session

CALLER = web.RequestKey("ui_caller", Caller)
SESSION = web.RequestKey("ui_session", Session)  # absent when a header authenticated
FILTERS = ("state", "alertname", "namespace", "playbook")
AUDIT_SCAN = 1000  # how far back the episode page looks for operator decisions about it


def _engine(request: web.Request) -> Engine:
    return request.config_dict[ENGINE]


def _common(request: web.Request, **context: Any) -> dict[str, Any]:
    session = request.get(SESSION)
    return {
        "caller": request[CALLER],
        "csrf": session.csrf if session else "",
        "signed_in_by_cookie": session is not None,
        **context,
    }


def _limit(value: str | None) -> int:
    try:
        return max(1, min(500, int(value))) if value else 50
    except ValueError:
        return 50


async def timeline(request: web.Request) -> web.Response:
    engine = _engine(request)
    query = {k: request.query[k] for k in FILTERS if request.query.get(k)}
    problem = None
    if query.get("state") not in (None, "firing", "resolved"):
        problem = "state must be firing or resolved"
        query.pop("state")
    episodes = await engine.views.episodes(
        status=query.get("state"),
        alertname=query.get("alertname"),
        namespace=query.get("namespace"),
        playbook=query.get("playbook"),
        limit=_limit(request.query.get("limit")),
    )
    rows = [await engine.views.row(e) for e in episodes]
    return page(
        "timeline.html",
        **_common(
            request,
            rows=rows,
            filters=query,
            problem=problem,
            playbooks=[s.name for s in engine.registry],
            breaker=await engine.governance.breaker(),
        ),
    )


def _change_lines(change: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for each `[before, after]` pair, (field, None, value) otherwise."""
    lines: list[tuple[str, Any, Any]] = []
    for key, value in change.items():
        if isinstance(value, list) and len(value) == 2:
            lines.append((key, value[0], value[1]))
        else:
            lines.append((key, None, value))
    return lines


def _audit_of(view: EpisodeView, audit: list[AuditRecord]) -> list[AuditRecord]:
    runs = {f"run:{r.id}" for r in view.runs}
    episode_id = view.episode.id
    return [
        a
        for a in audit
        if a.subject == episode_id or a.subject in runs or a.details.get("episode") == episode_id
    ]


async def episode(request: web.Request) -> web.Response:
    engine = _engine(request)
    episode_id = request.match_info["episode_id"]
    view = await engine.views.episode(episode_id)
    if view is None:
        return page(
            "missing.html",
            status=404,
            **_common(request, what=f"no episode {episode_id!r}"),
        )
    audit = _audit_of(view, await engine.governance.audit(AUDIT_SCAN))
    changes = {a.id: _change_lines(a.change) for a in view.actions}
    return page(
        "episode.html",
        **_common(
            request,
            view=view,
            changes=changes,
            audit=audit,
            prometheus=engine.settings.prometheus.url,
        ),
    )


async def governance(request: web.Request, *, message: str = "", status: int = 200) -> web.Response:
    engine = _engine(request)
    await engine.governance.refresh_modes()
    modes = []
    for spec in engine.registry:
        configured = engine.settings.playbook(spec.name)
        modes.append(
            {
                "name": spec.name,
                "mode": engine.modes.of(spec.name).value,
                "configured": engine.modes.configured(spec.name).value,
                "override": engine.modes.overridden(spec.name),
                "enabled": configured.enabled,
            }
        )
    return page(
        "governance.html",
        status=status,
        **_common(
            request,
            modes=modes,
            pauses=await engine.governance.switches(),
            breaker=await engine.governance.breaker(),
            approvals=await engine.governance.pending_approvals(),
            message=message,
        ),
    )


async def decide(request: web.Request) -> web.Response:
    """Approve or deny a pending run from the governance page (operator tokens only)."""
    caller: Caller = request[CALLER]
    form = await request.post()
    verdict = request.match_info["verdict"]
    try:
        run_id = int(request.match_info["run_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    reason = str(form.get("reason", "")).strip()
    if not caller.may_mutate:
        return await governance(
            request, message=f"{caller.name} may read but not decide", status=403
        )
    if not reason or len(reason) > 1000:
        return await governance(request, message="say why (1 to 1000 characters)", status=422)
    engine = _engine(request)
    if await engine.views.approval(run_id) is None:
        return await governance(request, message=f"run {run_id} never waited", status=404)
    try:
        if verdict == "approve":
            state = await engine.governance.approve(run_id, who=caller.name, reason=reason)
            message = f"run {run_id} approved by {caller.name}: {state.value}"
        else:
            await engine.governance.deny(run_id, who=caller.name, reason=reason)
            message = f"run {run_id} denied by {caller.name}"
    except GovernanceError as exc:
        return await governance(request, message=str(exc), status=409)
    return await governance(request, message=message)
