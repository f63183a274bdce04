"""The Alertmanager webhook payload (version 4) and the identity of an alert episode.

Alertmanager adds fields over time, so unknown fields are accepted and ignored. What we do
validate strictly is what a hostile or broken sender could use against us: label names must be
Prometheus label names, and sizes are bounded (see `Limits`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Limits:
    """Bounds on one notification; passed as validation context so tests can tighten them."""

    max_alerts: int = 1000
    max_labels: int = 128
    max_value_bytes: int = 4096


def _check_labels(value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
    limits: Limits = (info.context or {}).get("limits", Limits())
    if len(value) > limits.max_labels:
        raise ValueError(f"{len(value)} labels, more than the limit of {limits.max_labels}")
    for name, text in value.items():
        if not LABEL_NAME.match(name):
            raise ValueError(f"{name[:64]!r} is not a valid label name")
        if len(text.encode("utf-8", "surrogatepass")) > limits.max_value_bytes:
            raise ValueError(
                f"value of {name!r} is longer than the limit of {limits.max_value_bytes} bytes"
            )
    return value


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    _labels_ok = field_validator("labels", "annotations")(_check_labels)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def fingerprint_or_computed(self) -> str:
        return self.fingerprint or label_fingerprint(self.labels)

    @property
    def episode_id(self) -> str:
        return episode_id(self.fingerprint_or_computed, self.startsAt)


class Notification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert]

    @field_validator("alerts")
    @classmethod
    def _bounded(cls, value: list[Alert], info: ValidationInfo) -> list[Alert]:
        limits: Limits = (info.context or {}).get("limits", Limits())
        if len(value) > limits.max_alerts:
            raise ValueError(f"{len(value)} alerts, more than the limit of {limits.max_alerts}")
        return value


class PayloadError(Exception):
    """A notification that can never be accepted; `status` is the HTTP code to answer."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def parse_notification(body: bytes, limits: Limits | None = None) -> Notification:
    """Validate a webhook body: PayloadError(400) if it is not JSON, (422) if not the schema."""
    try:
        return Notification.model_validate_json(body, context={"limits": limits or Limits()})
    except ValidationError as exc:
        raw = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in raw):
            reason = next(e["msg"] for e in raw if e["type"] == "json_invalid")
            raise PayloadError(400, f"body is not valid JSON: {reason}") from exc
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"])[:200], "msg": str(e["msg"])[:300]}
            for e in raw[:20]
        ]
        raise PayloadError(422, "body is not an Alertmanager v4 notification", errors) from exc


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint (FNV-1a 64 over sorted labels), for senders that omit it."""
    h = 0xCBF29CE484222325
    for name in sorted(labels):
        for chunk in (
            name.encode(),
            b"\xff",
            labels[name].encode("utf-8", "surrogatepass"),
            b"\xff",
        ):
            for byte in chunk:
                h ^= byte
                h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def episode_id(fingerprint: str, starts_at: datetime) -> str:
    """One alert episode = (fingerprint, startsAt): stable across re-sends and HA peers."""
    instant = starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    digest = hashlib.sha256(f"{fingerprint}|{instant}".encode()).hexdigest()
    return f"ep-{digest[:20]}"
