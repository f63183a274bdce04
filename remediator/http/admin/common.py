"""What every admin handler shares: JSON in and out, errors, the caller, the engine."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediator.engine.engine import Engine
from remediator.http.admin.auth import AdminTokens, Caller
from remediator.http.keys import ENGINE

ADMIN_TOKENS = web.AppKey("admin_tokens", AdminTokens)
CALLER = web.RequestKey("admin_caller", Caller)  # set by the auth middleware

Model = TypeVar("Model", bound=BaseModel)


class Body(BaseModel):
    """Every mutation says why; the reason goes to the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_default)


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def record(value: Any) -> dict[str, Any]:
    """A store record as plain JSON-ready data (datetimes as ISO 8601 text)."""
    result: dict[str, Any] = json.loads(_dumps(value))
    return result


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class Problem(Exception):
    """An error answer raised from deep in a handler (bad input, unknown object)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def engine(request: web.Request) -> Engine:
    return request.config_dict[ENGINE]


def caller(request: web.Request) -> Caller:
    return request[CALLER]


async def parse(request: web.Request, model: type[Model]) -> Model:
    """The JSON body as `model`; 400 when it is not JSON, 422 naming each bad field."""
    try:
        data = await request.json()
    except ValueError:
        raise Problem(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
            for e in exc.errors()
        ]
        fields = ", ".join(d["field"] for d in details)
        raise Problem(422, f"invalid request body: {fields}", details=details) from None


def int_param(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise Problem(404, f"{name} must be an integer") from None
    if not 0 < value < 2**63:  # ids are positive SQLite integers; anything else names nothing
        raise Problem(404, f"no object with {name} {value}")
    return value
