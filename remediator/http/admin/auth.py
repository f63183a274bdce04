"""Admin API authentication: named bearer tokens with a role, compared in constant time.

Separate from the webhook's credentials: whoever can post alerts must not be able to approve
actions. A read token may call GET endpoints; an operator token may also mutate. The token's
name is who the audit log records.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from remediator.config import AdminSettings

Role = Literal["read", "operator"]


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role

    @property
    def may_mutate(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class AdminTokens:
    tokens: tuple[tuple[str, Caller], ...] = ()

    @classmethod
    def from_settings(cls, settings: AdminSettings) -> AdminTokens:
        return cls(tuple((t.value(), Caller(t.name, t.role)) for t in settings.tokens))

    def caller(self, header: str | None) -> Caller | None:
        """The caller a `Bearer` header names, or None. Every token is compared, so timing
        does not reveal which one was close."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = value.strip().encode("utf-8", "surrogatepass")
        found: Caller | None = None
        for token, caller in self.tokens:
            if hmac.compare_digest(given, token.encode("utf-8")):
                found = caller
        return found
