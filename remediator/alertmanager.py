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
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


@dataclass(frozen=True)
class Limits:
    """Bounds on one notification; the webhook takes them from the config."""

    max_alerts: int = 1000
    max_labels: int = 128
    max_value_chars: int = 4096


def aware(value: datetime) -> datetime:
    """RFC 3339 times carry an offset; a sender that leaves it out means UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
        return None if value is None else aware(value)

    @classmethod
    def from_data(cls, data: AlertData) -> Alert:
        """An Alert from already-validated data, without validating it a second time."""
        ends = data.get("endsAt")
        return cls.model_construct(
            status=data["status"],
            labels=data["labels"],
            annotations=data.get("annotations", {}),
            startsAt=aware(data["startsAt"]),
            endsAt=None if ends is None else aware(ends),
            generatorURL=data.get("generatorURL", ""),
            fingerprint=data.get("fingerprint", ""),
        )

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

    @classmethod
    def from_data(cls, data: NotificationData) -> Notification:
        return cls.model_construct(
            version=data["version"],
            groupKey=data.get("groupKey", ""),
            truncatedAlerts=data.get("truncatedAlerts", 0),
            status=data["status"],
            receiver=data.get("receiver", ""),
            groupLabels=data.get("groupLabels", {}),
            commonLabels=data.get("commonLabels", {}),
            commonAnnotations=data.get("commonAnnotations", {}),
            externalURL=data.get("externalURL", ""),
            alerts=[Alert.from_data(a) for a in data["alerts"]],
        )


class PayloadError(Exception):
    """A notification that can never be accepted; `status` is the HTTP code to answer."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


class AlertData(TypedDict):
    """One validated alert as plain data: what the webhook's hot path produces."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    startsAt: datetime
    endsAt: NotRequired[datetime | None]
    generatorURL: NotRequired[str]
    fingerprint: NotRequired[str]


class NotificationData(TypedDict):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    groupKey: NotRequired[str]
    truncatedAlerts: NotRequired[int]
    receiver: NotRequired[str]
    groupLabels: NotRequired[dict[str, str]]
    commonLabels: NotRequired[dict[str, str]]
    commonAnnotations: NotRequired[dict[str, str]]
    externalURL: NotRequired[str]
    alerts: list[AlertData]


@functools.lru_cache(maxsize=8)
def _validator(limits: Limits) -> TypeAdapter[NotificationData]:
    """The payload schema with the limits compiled in, so pydantic-core checks everything
    (label names, counts, lengths) in Rust. It yields plain dicts, not models: building 21
    model instances per notification cost more than the whole JSON parse."""
    name = Annotated[str, StringConstraints(pattern=LABEL_NAME, max_length=128)]
    value = Annotated[str, StringConstraints(max_length=limits.max_value_chars)]
    labels: Any = Annotated[dict[name, value], Field(max_length=limits.max_labels)]
    # The functional form, typed loosely: the field types are built here, from the limits.
    typed_dict: Any = TypedDict
    alert = typed_dict(
        "AlertData",
        {
            "status": Literal["firing", "resolved"],
            "labels": labels,
            "annotations": NotRequired[labels],
            "startsAt": datetime,
            "endsAt": NotRequired[datetime | None],
            "generatorURL": NotRequired[str],
            "fingerprint": NotRequired[str],
        },
    )
    notification = typed_dict(
        "NotificationData",
        {
            **NotificationData.__annotations__,
            "truncatedAlerts": NotRequired[Annotated[int, Field(ge=0)]],
            "groupLabels": NotRequired[labels],
            "commonLabels": NotRequired[labels],
            "commonAnnotations": NotRequired[labels],
            "alerts": Annotated[list[alert], Field(max_length=limits.max_alerts)],  # type: ignore[valid-type]
        },
    )
    adapter: TypeAdapter[NotificationData] = TypeAdapter(notification)
    return adapter


def validate_notification(body: bytes, limits: Limits | None = None) -> NotificationData:
    """Validate a webhook body: PayloadError(400) if it is not JSON, (422) if not the schema."""
    try:
        return _validator(limits or Limits()).validate_json(body)
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


def parse_notification(body: bytes, limits: Limits | None = None) -> Notification:
    """`validate_notification`, as models (for `explain` and tests; intake keeps the data)."""
    return Notification.from_data(validate_notification(body, limits))


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
    return episode_id_at(fingerprint, starts_at.astimezone(UTC).isoformat(timespec="microseconds"))


def episode_id_at(fingerprint: str, i: str) -> str:
    """`episode_id`, with startsAt already in its UTC ISO form (microseconds), which the
    record stores too: the digester formats it once per alert."""
    digest = hashlib.sha256(f"{fingerprint}|{i}".encode()).hexdigest()
    # Sliced out of the ISO form: strftime costs more than the hash (this runs per alert).
    return f"ep-{i[0:4]}{i[5:7]}{i[8:10]}{i[11:13]}{i[14:16]}{i[17:19]}-{digest[:16]}"
