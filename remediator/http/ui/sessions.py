"""Web-page sign-in: an admin token exchanged for a session cookie, with a CSRF secret.

The cookie holds a random session id, never the token, so a leaked page or log line does not
leak a credential. Sessions live in this process (a restart asks users to sign in again) and
expire; each carries its own CSRF secret that every form must echo back.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from remediator.http.admin.auth import Caller

COOKIE = "remediator_ui"
LIFETIME_S = 12 * 3600
MAX_SESSIONS = 1000  # bounded: a flood of sign-ins cannot grow memory without end


@dataclass(frozen=True)
class Session:
    caller: Caller
    csrf: str
    expires: float

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, lifetime_s: float = LIFETIME_S) -> None:
        self._lifetime = lifetime_s
        self._by_id: dict[str, Session] = {}

    def open(self, caller: Caller) -> str:
        self._expire()
        if len(self._by_id) >= MAX_SESSIONS:  # drop the oldest (dicts keep insertion order)
            del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(
            caller, secrets.token_urlsafe(32), time.monotonic() + self._lifetime
        )
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        found = self._by_id.get(session_id)
        if found is None or found.expires < time.monotonic():
            self._by_id.pop(session_id, None)
            return None
        return found

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def _expire(self) -> None:
        at = time.monotonic()
        for key in [k for k, s in self._by_id.items() if s.expires < at]:
            del self._by_id[key]
