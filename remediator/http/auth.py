"""Webhook authentication: Alertmanager's bearer token or HTTP basic, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    bearer: str | None = None
    basic: tuple[str, str] | None = None
    disabled: bool = False

    @property
    def configured(self) -> bool:
        return self.disabled or self.bearer is not None or self.basic is not None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def authorized(header: str | None, creds: Credentials) -> bool:
    if creds.disabled:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and creds.bearer is not None:
        return _same(value.strip(), creds.bearer)
    if scheme == "basic" and creds.basic is not None:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # Both halves are always compared, so timing does not reveal which one was wrong.
        ok_user = _same(user, creds.basic[0])
        ok_password = _same(password, creds.basic[1])
        return bool(sep) and ok_user and ok_password
    return False
