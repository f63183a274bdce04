"""Incident endpoints: list and read incidents (any token), clear one (operator token).

An incident is a target's trouble across alert episodes (engine/runs/incidents.py); a held one makes
later alerts for the target act on nothing until it is cleared here or goes quiet.
"""

from __future__ import annotations

from aiohttp import web

from remediator.engine.governance.api import GovernanceError
from remediator.engine.views import IncidentState
from remediator.http.admin.common import Body, Problem, caller, engine, int_param, parse, record
from remediator.http.admin.common import reply as _reply

STATES = tuple(s.value for s in IncidentState)


async def incidents(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise Problem(422, f"state must be one of {', '.join(STATES)}")
    found = await engine(request).views.incidents(IncidentState(state) if state else None)
    return _reply({"incidents": [record(i) for i in found]})


async def incident(request: web.Request) -> web.Response:
    incident_id = int_param(request, "incident_id")
    found = await engine(request).views.incident(incident_id)
    if found is None:
        raise Problem(404, f"no incident {incident_id}")
    return _reply(record(found))


async def clear(request: web.Request) -> web.Response:
    body = await parse(request, Body)
    incident_id = int_param(request, "incident_id")
    try:
        cleared = await engine(request).governance.clear_incident(
            incident_id, who=caller(request).name, reason=body.reason
        )
    except LookupError as exc:
        raise Problem(404, str(exc)) from None
    except GovernanceError as exc:
        raise Problem(409, str(exc)) from None
    return _reply(record(cleared))
