"""The storage interface by aggregate: one Protocol per repository, each implemented by one
module of a backend (store/sqlite/: intake.py, episodes.py, runs.py, ...).

`Store` (base.py) is their union, so code that needs several aggregates takes one store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from remediator.alertmanager import Alert
from remediator.store.records import (
    ActionRecord,
    ActionState,
    ApprovalRecord,
    ApprovalState,
    AuditRecord,
    BreakerRecord,
    DecisionKind,
    DecisionRecord,
    DigestPlan,
    EpisodeRecord,
    EpisodeState,
    EscalationRecord,
    IncidentRecord,
    IncidentState,
    IncomingNotification,
    JournalEntry,
    KillSwitchRecord,
    OutboxItem,
    ReplicaRecord,
    RunRecord,
    RunState,
    Scope,
    TimerRecord,
    TimerState,
    VerificationRecord,
    WorkItem,
    WorkKind,
)
from remediator.store.storm_records import HeldAlert, Sighting, StormPicture


class DigestWork(Protocol):
    """One slice's digest transaction (IntakeStore.digesting)."""

    known: Mapping[str, EpisodeState]

    async def apply(self, plan: DigestPlan) -> None: ...


class IntakeStore(Protocol):
    """Intake: a journal first (what the webhook waits for), episodes after (the digester)."""

    async def journal(self, batch: Sequence[IncomingNotification]) -> list[str]:
        """Record a batch of notifications as received, in one transaction; returns their
        ids, which sort in the order they were journaled, once durable."""
        ...

    async def undigested(self, limit: int) -> list[JournalEntry]:
        """Journaled notifications not yet digested, oldest first."""
        ...

    async def count_undigested(self) -> int: ...

    def digesting(self, episode_ids: Sequence[str]) -> AbstractAsyncContextManager[DigestWork]:
        """A transaction for one slice of the journal: what is known of `episode_ids`, and
        `apply` for the plan the engine makes of it (engine/intake/digest_plan.py); the plan and the
        mark that the slice is digested commit together (so a crash digests it again, never
        twice). An exception inside the block undoes the slice."""
        ...

    async def pending_work(self, kind: WorkKind, limit: int, after: str = "") -> list[WorkItem]:
        """Work recorded but not yet handled (after a restart, or after a queue overflow),
        by episode id (oldest startsAt first), starting after the episode id `after`."""
        ...

    async def mark_handled(self, item: WorkItem) -> None:
        """The dispatcher is done with the item (and lets go of its claim, `claim_work`);
        nothing is written when this replica was fenced."""
        ...

    async def prune(self, older_than: datetime) -> int: ...


class EpisodeStore(Protocol):
    """Episodes as they are read, and the synthetic episode of a run by hand."""

    async def get_episode(self, episode_id: str) -> EpisodeRecord | None: ...

    async def list_episodes(
        self,
        *,
        status: str | None = None,
        alertname: str | None = None,
        namespace: str | None = None,
        playbook: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[EpisodeRecord]: ...

    async def count_episodes(self) -> int: ...

    async def record_manual_episode(
        self, alert: Alert, *, who: str, reason: str, details: dict[str, Any]
    ) -> str:
        """Record a synthetic, already-dispatched episode for a run by hand; audited."""
        ...


class RunStore(Protocol):
    """Runs and what they record: decisions, calls, actions; the rate-limit ledger."""

    async def record_decision(
        self,
        episode_id: str,
        playbook: str | None,
        kind: DecisionKind,
        reason: str,
        run_id: int | None = None,
    ) -> None: ...

    async def claim_run(
        self, episode_id: str, playbook: str, target_key: str, mode: str
    ) -> int | None:
        """Create the run, or None if this (episode, playbook) was already claimed."""
        ...

    async def finish_run(
        self,
        run_id: int,
        state: RunState,
        *,
        error: str | None = None,
        evidence: dict[str, Any] | None = None,
        escalation: str | None = None,
    ) -> None:
        """Nothing is written when this replica was fenced (its run was reconciled)."""
        ...

    async def save_evidence(self, run_id: int, evidence: dict[str, Any]) -> None:
        """The run's evidence so far (written before each real action, so a crash keeps it)."""
        ...

    async def record_call(
        self, run_id: int, episode_id: str, verb: str, resource: str, obj: str, body: Any
    ) -> None: ...

    async def record_intent(
        self,
        run_id: int,
        episode_id: str,
        *,
        verb: str,
        resource: str,
        obj: str,
        summary: str,
        body: Any,
        change: dict[str, Any],
        dry_run: bool,
    ) -> int:
        """Record the action as intended (or, `dry_run`, as what would have been done), by
        this replica. Only while this replica is not fenced and its lease holds, and the run,
        if still `running`, is its own (PostgreSQL: in the same transaction, the replica row
        taken FOR SHARE so that the fence waits for it); otherwise raise `Fenced` and record
        nothing: the action must not be made."""
        ...

    async def record_outcome(
        self, action_id: int, state: ActionState, *, result: Any = None, error: str | None = None
    ) -> None:
        """Only an action still in `intent` (or a dry run's `would`, refused) takes an
        outcome: a reconciler may have marked it interrupted meanwhile."""
        ...

    async def unfinished_runs(self, owner: str | None = None) -> list[RunRecord]:
        """Runs still `running` that made at least one real action (read before
        `interrupt_unfinished`, which marks them interrupted); `owner`: only that replica's
        (None: every replica's, what the one SQLite process does at start)."""
        ...

    async def interrupt_unfinished(self, owner: str | None = None) -> list[ActionRecord]:
        """At start-up (or when `owner` was fenced): every intent without an outcome becomes
        `interrupted` (never re-run); a run that died before its first action is released so
        the episode runs again. `owner`: only that replica's runs and intents."""
        ...

    async def runs_for(self, episode_id: str) -> list[RunRecord]: ...

    async def actions_for(self, episode_id: str) -> list[ActionRecord]: ...

    async def actions_on(self, object_key: str, after_id: int) -> list[ActionRecord]:
        """Actions on one object recorded after action `after_id`, by any episode."""
        ...

    async def decisions_for(self, episode_id: str) -> list[DecisionRecord]: ...

    async def calls_for(self, episode_id: str) -> list[dict[str, Any]]: ...

    async def count_runs(
        self,
        *,
        since: datetime,
        states: Sequence[RunState],
        target_key: str | None = None,
        playbook: str | None = None,
    ) -> int: ...

    async def acting_runs(
        self,
        *,
        since: datetime | None = None,
        target_key: str | None = None,
        playbook: str | None = None,
        episode_id: str | None = None,
        exclude_run: int | None = None,
    ) -> list[datetime]:
        """The rate-limit ledger: runs that made at least one real action (intent, succeeded,
        failed or interrupted; never a dry run or a refusal), each as the time of its first
        real action at or after `since`, oldest first."""
        ...


class OutboxStore(Protocol):
    """Escalations and the outbox of reports and pages, with its dead letters."""

    async def add_escalation(
        self, episode_id: str, run_id: int | None, reason: str, details: dict[str, Any]
    ) -> int: ...

    async def escalations_for(self, episode_id: str) -> list[EscalationRecord]: ...

    async def escalations_since(self, since: datetime) -> list[EscalationRecord]:
        """Escalations recorded since then, oldest first (aggregated escalations' summaries)."""
        ...

    async def enqueue_outbox(
        self, channel: str, episode_id: str | None, kind: str, payload: dict[str, Any]
    ) -> int: ...

    async def due_outbox(self, channel: str, now: datetime, limit: int) -> list[OutboxItem]: ...

    async def outbox_delivered(self, item_id: int, at: datetime) -> None: ...

    async def outbox_failed(self, item_id: int, error: str, retry_at: datetime) -> None: ...

    async def outbox_pending(self) -> dict[str, int]:
        """Messages waiting for delivery per channel (dead letters not included)."""
        ...

    async def get_outbox_item(self, item_id: int) -> OutboxItem | None: ...

    async def outbox_for(self, episode_id: str) -> list[dict[str, Any]]:
        """Every queued message of the episode (reports, escalations), delivered or not."""
        ...

    async def outbox_dead(self, item_id: int, error: str, at: datetime) -> None:
        """Dead-letter a message: its channel skips it from now on, until a re-send."""
        ...

    async def dead_letters(self, channel: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Dead letters not re-sent, newest first."""
        ...

    async def dead_letter_counts(self) -> dict[str, int]: ...

    async def resend_dead_letter(self, item_id: int, *, who: str, reason: str) -> OutboxItem | None:
        """Queue a dead letter again (first of its channel, attempts from zero); audited.
        None when `item_id` is not a dead letter."""
        ...


class TimerStore(Protocol):
    """Durable timers (reverts, follow-ups, Slack clicks, GitOps checks)."""

    async def add_timer(
        self,
        kind: str,
        episode_id: str,
        *,
        due_at: datetime | None,
        run_id: int | None = None,
        playbook: str | None = None,
        delay_seconds: float = 0.0,
        payload: dict[str, Any] | None = None,
        held: bool = False,
    ) -> int:
        """due_at None: the timer waits for its episode to resolve, then fires after delay.
        `held`: it waits for `release_timers` first (a revert declared before acting)."""
        ...

    async def arm_timers(self, episode_id: str, resolved_at: datetime) -> int:
        """The episode resolved: timers waiting for it become due at resolved_at + delay."""
        ...

    async def release_timers(self, run_id: int, kind: str, *, arm: bool) -> int:
        """The run's `held` timers of `kind` start waiting (due already if their episode
        resolved), or with arm False are cancelled; returns how many."""
        ...

    async def due_timers(self, at: datetime, limit: int) -> list[TimerRecord]: ...

    async def claim_timer(self, timer_id: int) -> bool:
        """Take a waiting timer to run it (`running`, owned by this replica); False if another
        runner has it."""
        ...

    async def requeue_running_timers(self, owner: str | None = None) -> int:
        """At start-up (or when `owner` was fenced): timers a stopped daemon was running wait
        again (their handlers check the state they find; an action they left in `intent` is
        reconciled, not re-run). `owner`: only that replica's (None: every replica's)."""
        ...

    async def finish_timer(
        self, timer_id: int, state: TimerState, error: str | None = None
    ) -> None:
        """Nothing is written when the timer is another replica's now (it was requeued)."""
        ...

    async def cancel_timers(self, episode_id: str, kind: str | None = None) -> int: ...

    async def timers_for(self, episode_id: str) -> list[TimerRecord]: ...

    async def incident_timers(self, incident_id: int, kind: str) -> list[TimerRecord]:
        """Timers of `kind` of the runs the incident spans, oldest first."""
        ...


class GovernanceStore(Protocol):
    """Kill switches, approvals, verifications, playbook modes, the audit log; operator
    mutations write their audit row in the same transaction."""

    async def add_kill_switch(
        self, scope: Scope, key: str, *, reason: str, who: str, expires_at: datetime | None
    ) -> KillSwitchRecord: ...

    async def lift_kill_switch(
        self, switch_id: int, *, who: str, reason: str
    ) -> KillSwitchRecord | None:
        """None if the switch does not exist or is no longer active."""
        ...

    async def kill_switches(self, *, at: datetime | None = None) -> list[KillSwitchRecord]:
        """Switches active at `at`; every switch ever set when `at` is None."""
        ...

    async def add_approval(
        self, run_id: int, episode_id: str, playbook: str, target_key: str, expires_at: datetime
    ) -> ApprovalRecord: ...

    async def decide_approval(
        self, run_id: int, state: ApprovalState, *, who: str, reason: str
    ) -> ApprovalRecord | None:
        """Decide a pending approval once; None if it is not pending. Approving sets the run
        back to `running`."""
        ...

    async def get_approval(self, run_id: int) -> ApprovalRecord | None: ...

    async def approvals(self, *, state: ApprovalState | None = None) -> list[ApprovalRecord]: ...

    async def record_verification(
        self,
        *,
        episode_id: str,
        run_id: int,
        playbook: str,
        target_key: str,
        query: str,
        result: str,
        detail: str,
    ) -> int: ...

    async def verifications_for(self, episode_id: str) -> list[VerificationRecord]: ...

    async def recent_verifications(self, since: datetime) -> list[str]:
        """Results of verifications since then, newest first."""
        ...

    async def playbook_modes(self) -> dict[str, str]:
        """Operator overrides of playbook modes, by playbook name."""
        ...

    async def set_playbook_mode(
        self, playbook: str, mode: str | None, *, who: str, reason: str
    ) -> None:
        """Override a playbook's mode (None: back to the configuration); audited."""
        ...

    async def record_audit(
        self,
        who: str,
        action: str,
        subject: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> None: ...

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]: ...


class StormStore(Protocol):
    """The storm picture (engine/governance/storm_watch.py) and the breaker."""

    async def add_sightings(self, sightings: Sequence[Sighting]) -> None:
        """Record firing alerts as they arrived (an episode is sighted once)."""
        ...

    async def hold_alerts(
        self, breaker_id: int, sightings: Sequence[Sighting], reason: str
    ) -> None:
        """In one transaction: sight them as held by the breaker, mark their episodes handled
        with nothing to do when they resolve, and record a `held` decision for each."""
        ...

    async def mark_refused(self, episode_id: str, kind: str) -> None:
        """The sighted alert was refused before acting (it counts towards a refusal burst)."""
        ...

    async def storm_picture(self, since: datetime, known_since: datetime | None) -> StormPicture:
        """Counts of sighted targets (alerts a playbook handles) since `since`, and of known
        targets since `known_since` (None: not needed)."""
        ...

    async def held_alerts(self, breaker_id: int, limit: int = 10_000) -> list[HeldAlert]: ...

    async def count_held(self, breaker_id: int) -> int: ...

    async def open_breaker(
        self, reason: str, details: dict[str, Any], expires_at: datetime | None
    ) -> BreakerRecord | None:
        """Open the breaker; None if it already was open (so exactly one opener pages)."""
        ...

    async def current_breaker(self) -> BreakerRecord | None:
        """The breaker not closed yet (possibly past its expiry), if any."""
        ...

    async def close_breaker(
        self, *, who: str, reason: str, at: datetime | None = None
    ) -> BreakerRecord | None: ...

    async def last_breaker_close(self) -> datetime | None: ...

    async def latest_breaker(self) -> BreakerRecord | None:
        """The breaker opened last, open or closed."""
        ...

    async def get_breaker(self, breaker_id: int) -> BreakerRecord | None: ...


class IncidentStore(Protocol):
    """Incidents: a target's trouble across episodes (engine/runs/incidents.py)."""

    async def current_incident(self, playbook: str, target_key: str) -> IncidentRecord | None:
        """The incident of (playbook, target) not closed yet, if any."""
        ...

    async def open_incident(
        self, playbook: str, target_key: str, episode_id: str, run_id: int | None
    ) -> IncidentRecord:
        """The incident of (playbook, target), opened if there is none; the run joins it."""
        ...

    async def join_incident(
        self, incident_id: int, episode_id: str, run_id: int | None, how: str
    ) -> None: ...

    async def hold_incident(self, incident_id: int, reason: str) -> None: ...

    async def close_incident(
        self, incident_id: int, *, who: str, reason: str, audit: bool = False
    ) -> IncidentRecord | None:
        """Close it once; None if it is closed already. `audit`: an operator did it."""
        ...

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        """The incident with the episodes it spans."""
        ...

    async def list_incidents(
        self, *, state: IncidentState | None = None, limit: int = 100
    ) -> list[IncidentRecord]: ...

    async def incident_of_run(self, run_id: int) -> IncidentRecord | None: ...


class SlackStore(Protocol):
    """Slack: report threads, approval messages, signed clicks, run-now claims."""

    async def report_thread(self, episode_id: str) -> str | None:
        """The Slack `ts` of the episode's first report message (its thread), if posted."""
        ...

    async def set_report_thread(self, episode_id: str, channel: str, ts_: str) -> None: ...

    async def record_slack_click(
        self,
        signature: str,
        *,
        user_id: str,
        action: str,
        run_id: int | None,
        episode_id: str,
        timer_kind: str,
        payload: dict[str, Any],
    ) -> int | None:
        """Record a signed button click and a timer (due now) that processes it, in one
        transaction; returns the timer's id, or None if this signature was seen before."""
        ...

    async def set_approval_message(self, run_id: int, channel: str, ts_: str) -> None:
        """The Slack message that carries the run's Approve/Deny buttons."""
        ...

    async def approval_message(self, run_id: int) -> tuple[str, str] | None:
        """(channel, ts) of the run's message with buttons, if it was posted."""
        ...

    async def claim_run_now(
        self, run_id: int, episode_id: str, *, who: str, reason: str
    ) -> tuple[bool, str, datetime]:
        """Claim "run now" of a shadow run, once (audited): (True, who, at) for this claim,
        or (False, who, at) of the claim that came first."""
        ...


class ReplicaStore(Protocol):
    """The replicas sharing the store: leases, fencing, and the claims that are not rows of
    their own (dispatch work, outbox channels, the shared admission).

    Rules are the engine's (engine/runs/replicas.py); leases are on the store's clock
    (PostgreSQL's `now()`), never a replica's, so replicas' clocks may disagree. On SQLite
    one process is the only replica: the same SQL where it can be, trivially true where not.
    """

    async def register(self, name: str, lease_seconds: float) -> None:
        """This replica (`store.replica`) joins, leased for `lease_seconds`."""
        ...

    async def heartbeat(self, lease_seconds: float) -> bool:
        """Renew the lease; False when this replica was fenced (it must stop acting)."""
        ...

    async def fence_expired(self) -> list[str]:
        """Fence every other replica whose lease is past, atomically (each one is fenced by
        exactly one replica, which then reconciles what it held); returns their ids."""
        ...

    async def release(self) -> None:
        """A graceful stop, once this replica reconciled what it held: its lease ends and it
        is fenced by itself (nobody fences or reconciles it again; what it claimed is anyone's
        at once, its dispatch work and outbox channels included)."""
        ...

    async def replicas(self) -> list[ReplicaRecord]:
        """Every replica, live and fenced, with what each holds."""
        ...

    async def forget_replicas(self, fenced_for_seconds: float) -> int:
        """Delete the replicas fenced longer ago than that which hold nothing any more (no
        running run or timer, no dispatch work): a process restarted every day leaves a row
        a day. Returns how many."""
        ...

    def admission(self) -> AbstractAsyncContextManager[None]:
        """Held around a guard check and its intent: one admission at a time across replicas
        (PostgreSQL: a transaction holding the `admission` row FOR UPDATE; SQLite: nothing,
        the engine's own lock is enough)."""
        ...

    async def actions_in_flight(self) -> int:
        """Real actions in `intent` (their call under way) of replicas not fenced."""
        ...

    async def claim_work(self, item: WorkItem) -> bool:
        """Claim the dispatch of `item` for this replica: True when it is still unhandled and
        unclaimed, already this replica's, or claimed by a fenced replica."""
        ...

    async def hold_channel(self, channel: str, lease_seconds: float) -> bool:
        """Take or renew the lease of an outbox channel: one deliverer per channel at a time
        across replicas (its order is kept); False while another replica holds it."""
        ...
