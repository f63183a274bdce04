"""The Alertmanager webhook payload (version 4) and the identity of an alert episode.

Alertmanager adds fields over time, so unknown fields are accepted and ignored. What we do
validate strictly is what a hostile or broken sender could use against us: label names must be
Prometheus label names, and sizes are bounded (see `Limits`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
)

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


@dataclass(frozen=True)
class Limits:
    """Bounds on one notification; the webhook takes them from the config."""

    max_alerts: int = 1000
    max_labels: int = 128
    max_value_chars: int = 4096


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

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


class PayloadError(Exception):
    """A notification that can never be accepted; `status` is the HTTP code to answer."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


@functools.lru_cache(maxsize=8)
def _bounded_model(limits: Limits) -> type[Notification]:
    """Notification with the limits compiled into the schema, so pydantic-core checks them
    (label names, counts, lengths) in Rust instead of per-value Python callbacks."""
    name = Annotated[str, StringConstraints(pattern=LABEL_NAME, max_length=128)]
    value = Annotated[str, StringConstraints(max_length=limits.max_value_chars)]
    labels = Annotated[dict[name, value], Field(max_length=limits.max_labels)]
    alert = create_model(
        "Alert",
        __base__=Alert,
        labels=(labels, ...),
        annotations=(labels, Field(default_factory=dict)),
    )
    alerts = Annotated[list[alert], Field(max_length=limits.max_alerts)]
    return create_model("Notification", __base__=Notification, alerts=(alerts, ...))


def parse_notification(body: bytes, limits: Limits | None = None) -> Notification:
    """Validate a webhook body: PayloadError(400) if it is not JSON, (422) if not the schema."""
    try:
        return _bounded_model(limits or Limits()).model_validate_json(body)
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
    """One alert episode = (fingerprint, startsAt): stable across re-sends and HA peers.

    The id starts with startsAt so ids sort by time: new episodes land at the end of the
    store's index instead of on random pages (most of the cost of recording a storm).
    """
    utc = starts_at.astimezone(UTC)
    instant = utc.isoformat(timespec="microseconds")
    digest = hashlib.sha256(f"{fingerprint}|{instant}".encode()).hexdigest()
    return f"ep-{utc:%Y%m%d%H%M%S}-{digest[:16]}"
