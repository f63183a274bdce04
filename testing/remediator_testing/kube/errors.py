"""Kubernetes `Status` failures as a Python exception.

Clients decide what to do from the `reason`, `code` and `details` of a Status
body (the Python client raises `ApiException(status=code)`, kubectl prints the
message), so every failure the emulator reports goes through `ApiError`, which
renders exactly that shape.
"""

from __future__ import annotations

from typing import Any

from remediator_testing.kube.resources import ResourceType

JsonObj = dict[str, Any]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    return _REASONS.get(code, "Unknown")


def status_body(
    code: int,
    message: str,
    *,
    reason: str | None = None,
    details: JsonObj | None = None,
    success: bool = False,
) -> JsonObj:
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if success else "Failure",
        "code": code,
    }
    if not success:
        body["message"] = message
        body["reason"] = reason or reason_for(code)
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: JsonObj | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or reason_for(code)
        self.details = details
        self.retry_after = retry_after

    def body(self) -> JsonObj:
        return status_body(self.code, self.message, reason=self.reason, details=self.details)


def _details(rt: ResourceType, name: str, **extra: Any) -> JsonObj:
    details: JsonObj = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    details.update(extra)
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.group_resource} "{name}" not found', details=_details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'{rt.group_resource} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(rt, name),
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details=_details(rt, name),
    )


def invalid(rt: ResourceType, name: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f'{rt.kind} "{name}" is invalid: {field}: {message}',
        details={
            **_details(rt, name, kind=rt.kind),
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
