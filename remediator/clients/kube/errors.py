"""What a failed Kubernetes call means to the caller, with the API server's own words.

The API server explains every refusal in a `Status` object (`reason`, `message`, `details`);
that message is what an on-call human needs, so it is kept verbatim. Transport failures
(refused or dropped connections, timeouts) carry status 0.
"""

from __future__ import annotations

import json
from typing import Any

TRANSPORT = 0  # `status` of a failure below HTTP: no answer at all


class KubeError(Exception):
    """A call failed: `status` (0 without an HTTP answer), the API's `reason` and `message`."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        what: str = "",
        retry_after: float | None = None,
        causes: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what
        self.retry_after = retry_after
        self.causes = causes
        prefix = f"{what}: " if what else ""
        code = f"{status} {reason}" if status else reason
        super().__init__(f"{prefix}{code}: {message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def blocked_by_budget(self) -> bool:
        """An eviction a PodDisruptionBudget forbids right now (429 with that cause)."""
        return self.status == 429 and "DisruptionBudget" in self.causes

    @property
    def transient(self) -> bool:
        """Worth another try: no answer, throttled (but not by a budget), or a server error."""
        if self.blocked_by_budget:
            return False
        return self.status in (TRANSPORT, 429) or self.status >= 500


class KubeUnavailable(KubeError):
    """Transient failures until the retries ran out: the API server is unreachable or sick."""


def from_response(status: int, body: bytes, headers: Any, what: str) -> KubeError:
    """The error for a non-2xx answer, from its `Status` body when there is one."""
    reason, message = "", ""
    causes: tuple[str, ...] = ()
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    if isinstance(data, dict) and data.get("kind") == "Status":
        reason = str(data.get("reason") or "")
        message = str(data.get("message") or "")
        details = data.get("details") or {}
        causes = tuple(
            str(c.get("reason") or "") for c in details.get("causes") or [] if isinstance(c, dict)
        )
    if not message:
        message = body.decode("utf-8", "replace")[:500] if body else "(no body)"
    return KubeError(
        status,
        reason or _REASONS.get(status, "Error"),
        message,
        what=what,
        retry_after=_retry_after(headers),
        causes=causes,
    )


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare from the API server; fall back to the backoff
        return None


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
