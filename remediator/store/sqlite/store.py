"""The embedded store: one SQLite file in WAL mode, nothing else to run.

`SQLiteStore` composes the repositories, one per aggregate, over one `Database` (connections,
the write lock, group commit). Each repository is also an attribute (`store.runs`,
`store.outbox`, ...); the flat `Store` API forwards each method to the repository that owns
it (the table below is the index of who owns what).
"""

from __future__ import annotations

from pathlib import Path

from remediator.clock import SYSTEM, Clock
from remediator.store.journal import Journal, journal_path
from remediator.store.resends import Resends
from remediator.store.sqlite.database import Database
from remediator.store.sqlite.episodes import EpisodeRepository
from remediator.store.sqlite.governance import GovernanceRepository
from remediator.store.sqlite.incidents import IncidentRepository
from remediator.store.sqlite.intake import IntakeRepository
from remediator.store.sqlite.outbox import OutboxRepository
from remediator.store.sqlite.replicas import ReplicaRepository
from remediator.store.sqlite.runs import RunRepository
from remediator.store.sqlite.slack import SlackRepository
from remediator.store.sqlite.storm import StormRepository
from remediator.store.sqlite.timers import TimerRepository
from remediator.store.via import via


class SQLiteStore:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 2000,
        clock: Clock = SYSTEM,
        replica: str | None = None,
    ) -> None:
        self.path = path
        self.database = db = Database(
            path,
            synchronous=synchronous,
            busy_timeout_ms=busy_timeout_ms,
            clock=clock,
            replica=replica,
        )
        self.journal_file = Journal(journal_path(path), synchronous=synchronous)
        resends = Resends()
        self.intake = IntakeRepository(db, self.journal_file, resends)
        self.episodes = EpisodeRepository(db, resends)
        self.runs = RunRepository(db)
        self.outbox = OutboxRepository(db)
        self.timers = TimerRepository(db)
        self.governance = GovernanceRepository(db)
        self.storm = StormRepository(db)
        self.incidents = IncidentRepository(db)
        self.slack = SlackRepository(db)
        self.coordination = ReplicaRepository(db)

    @property
    def replica(self) -> str:
        return self.database.replica

    @property
    def shared(self) -> bool:
        return False  # one process per SQLite file

    async def open(self) -> None:
        await self.database.open()
        await self.intake.open()

    async def close(self) -> None:
        await self.intake.close()
        await self.database.close()
        await self.journal_file.close()

    async def ping(self) -> None:
        await self.database.ping()
        await self.journal_file.ping()

    # intake
    journal = via("intake", IntakeRepository.journal)
    undigested = via("intake", IntakeRepository.undigested)
    count_undigested = via("intake", IntakeRepository.count_undigested)
    digesting = via("intake", IntakeRepository.digesting)
    pending_work = via("intake", IntakeRepository.pending_work)
    mark_handled = via("intake", IntakeRepository.mark_handled)
    prune = via("intake", IntakeRepository.prune)
    # episodes
    get_episode = via("episodes", EpisodeRepository.get_episode)
    list_episodes = via("episodes", EpisodeRepository.list_episodes)
    count_episodes = via("episodes", EpisodeRepository.count_episodes)
    record_manual_episode = via("episodes", EpisodeRepository.record_manual_episode)
    # runs
    record_decision = via("runs", RunRepository.record_decision)
    claim_run = via("runs", RunRepository.claim_run)
    finish_run = via("runs", RunRepository.finish_run)
    save_evidence = via("runs", RunRepository.save_evidence)
    record_call = via("runs", RunRepository.record_call)
    record_intent = via("runs", RunRepository.record_intent)
    record_outcome = via("runs", RunRepository.record_outcome)
    unfinished_runs = via("runs", RunRepository.unfinished_runs)
    interrupt_unfinished = via("runs", RunRepository.interrupt_unfinished)
    runs_for = via("runs", RunRepository.runs_for)
    actions_for = via("runs", RunRepository.actions_for)
    actions_on = via("runs", RunRepository.actions_on)
    decisions_for = via("runs", RunRepository.decisions_for)
    calls_for = via("runs", RunRepository.calls_for)
    count_runs = via("runs", RunRepository.count_runs)
    acting_runs = via("runs", RunRepository.acting_runs)
    # outbox
    add_escalation = via("outbox", OutboxRepository.add_escalation)
    escalations_for = via("outbox", OutboxRepository.escalations_for)
    escalations_since = via("outbox", OutboxRepository.escalations_since)
    enqueue_outbox = via("outbox", OutboxRepository.enqueue_outbox)
    due_outbox = via("outbox", OutboxRepository.due_outbox)
    outbox_delivered = via("outbox", OutboxRepository.outbox_delivered)
    outbox_failed = via("outbox", OutboxRepository.outbox_failed)
    outbox_pending = via("outbox", OutboxRepository.outbox_pending)
    get_outbox_item = via("outbox", OutboxRepository.get_outbox_item)
    outbox_for = via("outbox", OutboxRepository.outbox_for)
    outbox_dead = via("outbox", OutboxRepository.outbox_dead)
    dead_letters = via("outbox", OutboxRepository.dead_letters)
    dead_letter_counts = via("outbox", OutboxRepository.dead_letter_counts)
    resend_dead_letter = via("outbox", OutboxRepository.resend_dead_letter)
    # timers
    add_timer = via("timers", TimerRepository.add_timer)
    arm_timers = via("timers", TimerRepository.arm_timers)
    release_timers = via("timers", TimerRepository.release_timers)
    due_timers = via("timers", TimerRepository.due_timers)
    claim_timer = via("timers", TimerRepository.claim_timer)
    requeue_running_timers = via("timers", TimerRepository.requeue_running_timers)
    finish_timer = via("timers", TimerRepository.finish_timer)
    cancel_timers = via("timers", TimerRepository.cancel_timers)
    timers_for = via("timers", TimerRepository.timers_for)
    incident_timers = via("timers", TimerRepository.incident_timers)
    # governance
    add_kill_switch = via("governance", GovernanceRepository.add_kill_switch)
    lift_kill_switch = via("governance", GovernanceRepository.lift_kill_switch)
    kill_switches = via("governance", GovernanceRepository.kill_switches)
    add_approval = via("governance", GovernanceRepository.add_approval)
    decide_approval = via("governance", GovernanceRepository.decide_approval)
    get_approval = via("governance", GovernanceRepository.get_approval)
    approvals = via("governance", GovernanceRepository.approvals)
    record_verification = via("governance", GovernanceRepository.record_verification)
    verifications_for = via("governance", GovernanceRepository.verifications_for)
    recent_verifications = via("governance", GovernanceRepository.recent_verifications)
    playbook_modes = via("governance", GovernanceRepository.playbook_modes)
    set_playbook_mode = via("governance", GovernanceRepository.set_playbook_mode)
    record_audit = via("governance", GovernanceRepository.record_audit)
    audit_log = via("governance", GovernanceRepository.audit_log)
    # storm
    add_sightings = via("storm", StormRepository.add_sightings)
    hold_alerts = via("storm", StormRepository.hold_alerts)
    mark_refused = via("storm", StormRepository.mark_refused)
    storm_picture = via("storm", StormRepository.storm_picture)
    held_alerts = via("storm", StormRepository.held_alerts)
    count_held = via("storm", StormRepository.count_held)
    open_breaker = via("storm", StormRepository.open_breaker)
    current_breaker = via("storm", StormRepository.current_breaker)
    close_breaker = via("storm", StormRepository.close_breaker)
    last_breaker_close = via("storm", StormRepository.last_breaker_close)
    latest_breaker = via("storm", StormRepository.latest_breaker)
    get_breaker = via("storm", StormRepository.get_breaker)
    # incidents
    current_incident = via("incidents", IncidentRepository.current_incident)
    open_incident = via("incidents", IncidentRepository.open_incident)
    join_incident = via("incidents", IncidentRepository.join_incident)
    hold_incident = via("incidents", IncidentRepository.hold_incident)
    close_incident = via("incidents", IncidentRepository.close_incident)
    get_incident = via("incidents", IncidentRepository.get_incident)
    list_incidents = via("incidents", IncidentRepository.list_incidents)
    incident_of_run = via("incidents", IncidentRepository.incident_of_run)
    # slack
    report_thread = via("slack", SlackRepository.report_thread)
    set_report_thread = via("slack", SlackRepository.set_report_thread)
    record_slack_click = via("slack", SlackRepository.record_slack_click)
    set_approval_message = via("slack", SlackRepository.set_approval_message)
    approval_message = via("slack", SlackRepository.approval_message)
    claim_run_now = via("slack", SlackRepository.claim_run_now)
    # replicas
    register = via("coordination", ReplicaRepository.register)
    heartbeat = via("coordination", ReplicaRepository.heartbeat)
    fence_expired = via("coordination", ReplicaRepository.fence_expired)
    release = via("coordination", ReplicaRepository.release)
    replicas = via("coordination", ReplicaRepository.replicas)
    forget_replicas = via("coordination", ReplicaRepository.forget_replicas)
    admission = via("coordination", ReplicaRepository.admission)
    actions_in_flight = via("coordination", ReplicaRepository.actions_in_flight)
    claim_work = via("coordination", ReplicaRepository.claim_work)
    hold_channel = via("coordination", ReplicaRepository.hold_channel)
