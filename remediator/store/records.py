"""Plain records that cross the store boundary (the store never hands out rows or cursors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from remediator.alertmanager import Alert, AlertData, NotificationData


class WorkKind(StrEnum):
    FIRING = "firing"  # a new episode: decide and maybe act
    RESOLVED = "resolved"  # an episode closed: never act, only close what it opened


@dataclass(frozen=True)
class IncomingNotification:
    """A validated notification as the webhook received it, on its way into the journal."""

    data: NotificationData
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class JournalEntry:
    """A notification acknowledged to Alertmanager and not yet digested into episodes."""

    id: str
    seq: int  # its place in the journal
    received_at: datetime
    body: bytes


@dataclass(frozen=True)
class WorkItem:
    kind: WorkKind
    episode_id: str
    alert: Alert


@dataclass(frozen=True)
class Digested:
    """What one notification changed: the work it created (empty for a pure re-send)."""

    notification_id: str
    work: list[WorkItem]
    new_episodes: int
    resent_alerts: int
    resolved_episodes: int


# -- digesting: the engine decides (engine/intake/digest_plan.py), the store applies ------
@dataclass(frozen=True)
class EpisodeState:
    """What digesting needs to know of an episode that already exists."""

    status: str  # firing | resolved
    no_work: bool  # nothing was (or will be) dispatched for it: no playbook, or held


@dataclass(frozen=True)
class NewEpisode:
    alert: AlertData
    id: str
    fingerprint: str
    starts_at: str  # UTC ISO form with microseconds, as in the episode id
    notification_id: str
    truncated: bool
    # A firing alert that needs dispatch; anything else is handled on arrival.
    wanted: bool
    resolved_at: datetime | None  # arrived resolved


@dataclass(frozen=True)
class ResolvedEpisode:
    id: str
    resolved_at: datetime
    truncated: bool
    handled: bool  # nothing ran for it: closed on arrival, no work


@dataclass(frozen=True)
class ResentAlert:
    """A re-send (or a late firing after the resolve): counted, no new work."""

    id: str
    truncated: bool


@dataclass(frozen=True)
class DigestedNotification:
    entry: JournalEntry
    group_key: str
    receiver: str
    status: str
    alerts: int
    truncated_alerts: int
    new_episodes: int


@dataclass
class DigestPlan:
    """Everything one slice of the journal changes, applied by the store in one transaction
    that also marks the slice digested."""

    new: list[NewEpisode] = field(default_factory=list)
    resolved: list[ResolvedEpisode] = field(default_factory=list)
    resent: list[ResentAlert] = field(default_factory=list)
    # Decided on arrival, without dispatch: (episode id, kind, reason).
    decisions: list[tuple[str, str, str]] = field(default_factory=list)
    notifications: list[DigestedNotification] = field(default_factory=list)
    results: list[Digested] = field(default_factory=list)


class RunState(StrEnum):
    RUNNING = "running"
    ACTED = "acted"  # changed something (auto mode)
    SHADOW = "shadow"  # recorded what it would do, changed nothing
    NOOP = "noop"  # ran, found nothing to do
    REFUSED = "refused"  # a guard said no
    FAILED = "failed"
    PENDING_APPROVAL = "pending_approval"
    INTERRUPTED = "interrupted"  # the daemon died with an intent and no outcome


class ActionState(StrEnum):
    INTENT = "intent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WOULD = "would"  # shadow mode: the exact call, not made
    REFUSED = "refused"  # a guard said no; the call was not made
    INTERRUPTED = "interrupted"


class DecisionKind(StrEnum):
    NO_PLAYBOOK = "no_playbook"
    MATCHED = "matched"
    SKIPPED = "skipped"
    ACTED = "acted"
    SHADOW = "shadow"
    NOOP = "noop"
    REFUSED = "refused"
    FAILED = "failed"
    PENDING_APPROVAL = "pending_approval"
    RESOLVED = "resolved"
    REVERTED = "reverted"
    INTERRUPTED = "interrupted"  # the daemon stopped during the run (engine/runs/recovery.py)
    HELD = "held"  # an escalated incident of the target holds further runs
    STORM_HELD = "storm_held"  # held by the open storm breaker, never dispatched
    CHECKED = "checked"  # a change read again later was still in effect (engine/runs/gitops.py)
    UNDONE = "undone"  # ... was undone or overwritten since: escalated
    RESUMED = "resumed"  # a GitOps controller's reconciliation it suspended was restored


@dataclass(frozen=True)
class EpisodeRecord:
    id: str
    fingerprint: str
    starts_at: datetime
    alertname: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    notifications: int
    truncated: bool = False


@dataclass(frozen=True)
class ActionRecord:
    id: int
    run_id: int
    episode_id: str
    playbook: str
    target_key: str
    verb: str
    resource: str
    object: str
    summary: str
    body: Any
    change: dict[str, Any]
    state: ActionState
    intended_at: datetime
    finished_at: datetime | None
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    episode_id: str
    playbook: str
    target_key: str
    mode: str
    state: RunState
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    evidence: dict[str, Any] = field(default_factory=dict)
    escalation: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    episode_id: str
    playbook: str | None
    kind: DecisionKind
    reason: str
    at: datetime
    run_id: int | None


@dataclass(frozen=True)
class EscalationRecord:
    id: int
    episode_id: str
    run_id: int | None
    reason: str
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    episode_id: str | None
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    dead_at: datetime | None = None  # dead-lettered: skipped by its channel until re-sent
    delivered_at: datetime | None = None


class TimerState(StrEnum):
    WAITING = "waiting"  # for its due time (or, due time unset, for its episode to resolve)
    HELD = "held"  # declared before its run acted: waits for `release_timers`
    RUNNING = "running"  # claimed by a timer runner
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class TimerRecord:
    id: int
    kind: str
    episode_id: str
    run_id: int | None
    playbook: str | None
    due_at: datetime | None
    state: TimerState
    payload: dict[str, Any]
    created_at: datetime


# -- governance: kill switches, the storm breaker, approvals, verifications, the audit log ------


class Scope(StrEnum):
    """What a kill switch stops: everything, one playbook, or one target (Kind/ns/name)."""

    GLOBAL = "global"
    PLAYBOOK = "playbook"
    TARGET = "target"


@dataclass(frozen=True)
class KillSwitchRecord:
    id: int
    scope: Scope
    key: str  # "" for global, the playbook name, or the target key
    reason: str
    who: str
    created_at: datetime
    expires_at: datetime | None
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    def active(self, at: datetime) -> bool:
        return self.lifted_at is None and (self.expires_at is None or self.expires_at > at)


@dataclass(frozen=True)
class BreakerRecord:
    id: int
    opened_at: datetime
    reason: str
    details: dict[str, Any]
    expires_at: datetime | None
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None

    @property
    def page_key(self) -> str:
        """The escalation (PagerDuty dedup_key) its opening raised: one page per opening."""
        return f"storm-breaker-{self.id}"

    def open_at(self, at: datetime) -> bool:
        return self.closed_at is None and (self.expires_at is None or self.expires_at > at)


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ApprovalRecord:
    run_id: int
    episode_id: str
    playbook: str
    target_key: str
    requested_at: datetime
    expires_at: datetime
    state: ApprovalState
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = None


class VerificationResult(StrEnum):
    VERIFIED = "verified"
    NOT_VERIFIED = "not_verified"
    UNKNOWN = "unknown"  # Prometheus unreachable or the query cannot be evaluated


@dataclass(frozen=True)
class VerificationRecord:
    id: int
    episode_id: str
    run_id: int
    playbook: str
    target_key: str
    query: str
    result: VerificationResult
    detail: str
    at: datetime


@dataclass(frozen=True)
class AuditRecord:
    """One governance mutation: who did what, to what, when and why."""

    id: int
    at: datetime
    who: str
    action: str
    subject: str
    reason: str
    details: dict[str, Any]


class IncidentState(StrEnum):
    OPEN = "open"  # something was done; later episodes of the target are part of it
    HELD = "held"  # escalated: later alerts join it and nothing acts until cleared or quiet
    CLOSED = "closed"


@dataclass(frozen=True)
class IncidentRecord:
    """The trouble of one target under one playbook, across alert episodes."""

    id: int
    playbook: str
    target_key: str
    state: IncidentState
    opened_at: datetime
    last_seen: datetime
    held_at: datetime | None = None
    held_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    episodes: list[dict[str, Any]] = field(default_factory=list)


# -- replicas: the processes sharing one store, and what each holds -----------------------------


@dataclass(frozen=True)
class ReplicaRecord:
    """One process sharing the store (store/protocols.py `ReplicaStore`). Its lease is renewed
    by its heartbeat; once it expired, another replica fences it (`fenced_at`, `fenced_by`) and
    reconciles what it held. A fenced replica never comes back: it restarts as a new one."""

    id: str
    name: str
    started_at: datetime
    heartbeat_at: datetime
    lease_until: datetime
    fenced_at: datetime | None = None
    fenced_by: str | None = None
    live: bool = False  # not fenced and its lease not past, by the store's clock
    runs: list[int] = field(default_factory=list)  # runs `running` it owns
    timers: list[int] = field(default_factory=list)  # timers `running` it claimed
    work: list[str] = field(default_factory=list)  # episodes it claimed to dispatch
    channels: list[str] = field(default_factory=list)  # outbox channels whose lease it holds
