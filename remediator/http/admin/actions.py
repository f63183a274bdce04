"""Mutation endpoints (operator token): pause, resume, playbook mode, close the breaker,
approve, deny, run by hand, re-send a report, re-send a dead letter. Each is a thin layer over
`Governance`: it checks the input (422), that the object exists (404), and maps a refusal of
the current state (409). Who is the token's name; why is the required `reason`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import Field, field_validator

from remediator.config import Mode
from remediator.engine.governance.api import GovernanceError
from remediator.engine.governance.manual import ManualRunError
from remediator.http.admin.common import Body, Problem, caller, engine, int_param, parse, record
from remediator.http.admin.common import reply as _reply


class PauseBody(Body):
    scope: Literal["global", "playbook", "target"]
    key: str = Field("", max_length=512)
    expires_in_seconds: float | None = Field(None, gt=0, le=365 * 86400)


class ModeBody(Body):
    mode: Mode | None


class RunBody(Body):
    playbook: str = Field(min_length=1, max_length=256)
    labels: dict[str, str]
    dry_run: bool = True

    @field_validator("labels")
    @classmethod
    def _bounded(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > 64 or any(len(k) > 256 or len(v) > 4096 for k, v in labels.items()):
            raise ValueError("at most 64 labels, names up to 256 and values up to 4096 chars")
        return labels


async def pause(request: web.Request) -> web.Response:
    body = await parse(request, PauseBody)
    eng = engine(request)
    if body.scope == "playbook" and eng.registry.get(body.key) is None:
        raise Problem(404, f"no playbook named {body.key!r} is loaded")
    expires = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    try:
        switch = await eng.governance.pause(
            body.scope, body.key, who=caller(request).name, reason=body.reason, expires_in=expires
        )
    except GovernanceError as exc:
        raise Problem(422, str(exc)) from None
    return _reply(record(switch), 201)


async def resume(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    eng = engine(request)
    switch_id = int_param(request, "switch_id")
    if all(s.id != switch_id for s in await eng.governance.switches(include_inactive=True)):
        raise Problem(404, f"no pause {switch_id}")
    lifted = await eng.governance.resume(switch_id, who=caller(request).name, reason=body.reason)
    return _reply(record(lifted))


async def set_mode(request: web.Request) -> web.Response:
    body = await parse(request, ModeBody)
    eng = engine(request)
    name = request.match_info["name"]
    if eng.registry.get(name) is None:
        raise Problem(404, f"no playbook named {name!r} is loaded")
    mode = await eng.governance.set_mode(
        name, body.mode, who=caller(request).name, reason=body.reason
    )
    return _reply({"playbook": name, "mode": mode.value, "override": body.mode is not None})


async def close_breaker(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    closed = await engine(request).governance.close_breaker(
        who=caller(request).name, reason=body.reason
    )
    return _reply(record(closed))


async def _known_approval(request: web.Request) -> int:
    run_id = int_param(request, "run_id")
    if await engine(request).views.approval(run_id) is None:
        raise Problem(404, f"run {run_id} never waited for an approval")
    return run_id


async def approve(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    run_id = await _known_approval(request)
    state = await engine(request).governance.approve(
        run_id, who=caller(request).name, reason=body.reason
    )
    return _reply({"run_id": run_id, "state": state.value})


async def deny(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    run_id = await _known_approval(request)
    decided = await engine(request).governance.deny(
        run_id, who=caller(request).name, reason=body.reason
    )
    return _reply(record(decided))


async def run(request: web.Request) -> web.Response:
    body = await parse(request, RunBody)
    try:
        done = await engine(request).governance.run(
            body.playbook,
            body.labels,
            dry_run=body.dry_run,
            who=caller(request).name,
            reason=body.reason,
        )
    except ManualRunError as exc:
        raise Problem(404 if exc.unknown else 422, str(exc)) from None
    return _reply(
        {
            "episode_id": done.episode_id,
            "state": done.run_state.value,
            "target": done.target,
            "dry_run": done.dry_run,
        },
        201,
    )


async def resend_report(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    eng = engine(request)
    episode_id = request.match_info["episode_id"]
    if not await eng.views.episode_exists(episode_id):
        raise Problem(404, f"no episode {episode_id!r}")
    count = await eng.governance.resend_report(
        episode_id, who=caller(request).name, reason=body.reason
    )
    return _reply({"episode_id": episode_id, "queued": count})


async def resend_dead_letter(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    item_id = int_param(request, "item_id")
    try:
        item = await engine(request).governance.resend_dead_letter(
            item_id, who=caller(request).name, reason=body.reason
        )
    except LookupError as exc:
        raise Problem(404, str(exc)) from None
    return _reply(record(item))
