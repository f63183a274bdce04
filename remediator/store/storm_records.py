"""Records of the storm picture: what the storm breaker knows and what it holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Sighting:
    """One firing alert that arrived, as the storm picture counts it: by target."""

    episode_id: str
    target_key: str  # the resolved target, or a key of the alert when it has none
    namespace: str | None
    playbook: str | None  # None: no playbook handles it (listed when held, never counted)
    alertname: str


@dataclass(frozen=True)
class StormPicture:
    """Counts the storm rules decide on (engine/guards/storm_rules.py)."""

    alerting: int  # distinct targets sighted in the window (since the last close)
    alerting_by_namespace: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # of those alerts, refused before acting
    known: int = 0  # distinct targets sighted in the known-workloads window
    known_by_namespace: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HeldAlert:
    """An alert the open breaker held instead of dispatching it."""

    episode_id: str
    alertname: str
    target_key: str
    namespace: str | None
    playbook: str | None
    at: datetime
