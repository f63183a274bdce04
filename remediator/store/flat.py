"""The flat store API both backends share: each method forwards to the repository that owns it
(`store.runs.claim_run` is `store.claim_run`), typed by the aggregate's Protocol
(store/protocols.py). A backend's store subclasses `FlatStore` and sets the repositories as
attributes of the same names (store/sqlite/store.py, store/postgres/store.py)."""

from __future__ import annotations

from remediator.store.protocols import (
    EpisodeStore,
    GovernanceStore,
    IncidentStore,
    IntakeStore,
    OutboxStore,
    ReplicaStore,
    RunStore,
    SlackStore,
    StormStore,
    TimerStore,
)
from remediator.store.via import via


class FlatStore:
    # intake
    journal = via("intake", IntakeStore.journal)
    undigested = via("intake", IntakeStore.undigested)
    count_undigested = via("intake", IntakeStore.count_undigested)
    digesting = via("intake", IntakeStore.digesting)
    pending_work = via("intake", IntakeStore.pending_work)
    mark_handled = via("intake", IntakeStore.mark_handled)
    prune = via("intake", IntakeStore.prune)
    # episodes
    get_episode = via("episodes", EpisodeStore.get_episode)
    list_episodes = via("episodes", EpisodeStore.list_episodes)
    count_episodes = via("episodes", EpisodeStore.count_episodes)
    record_manual_episode = via("episodes", EpisodeStore.record_manual_episode)
    # runs
    record_decision = via("runs", RunStore.record_decision)
    claim_run = via("runs", RunStore.claim_run)
    finish_run = via("runs", RunStore.finish_run)
    save_evidence = via("runs", RunStore.save_evidence)
    record_call = via("runs", RunStore.record_call)
    record_intent = via("runs", RunStore.record_intent)
    record_outcome = via("runs", RunStore.record_outcome)
    unfinished_runs = via("runs", RunStore.unfinished_runs)
    interrupt_unfinished = via("runs", RunStore.interrupt_unfinished)
    runs_for = via("runs", RunStore.runs_for)
    actions_for = via("runs", RunStore.actions_for)
    actions_on = via("runs", RunStore.actions_on)
    decisions_for = via("runs", RunStore.decisions_for)
    calls_for = via("runs", RunStore.calls_for)
    count_runs = via("runs", RunStore.count_runs)
    acting_runs = via("runs", RunStore.acting_runs)
    # outbox
    add_escalation = via("outbox", OutboxStore.add_escalation)
    escalations_for = via("outbox", OutboxStore.escalations_for)
    escalations_since = via("outbox", OutboxStore.escalations_since)
    enqueue_outbox = via("outbox", OutboxStore.enqueue_outbox)
    due_outbox = via("outbox", OutboxStore.due_outbox)
    outbox_delivered = via("outbox", OutboxStore.outbox_delivered)
    outbox_failed = via("outbox", OutboxStore.outbox_failed)
    outbox_pending = via("outbox", OutboxStore.outbox_pending)
    get_outbox_item = via("outbox", OutboxStore.get_outbox_item)
    outbox_for = via("outbox", OutboxStore.outbox_for)
    outbox_dead = via("outbox", OutboxStore.outbox_dead)
    dead_letters = via("outbox", OutboxStore.dead_letters)
    dead_letter_counts = via("outbox", OutboxStore.dead_letter_counts)
    resend_dead_letter = via("outbox", OutboxStore.resend_dead_letter)
    # timers
    add_timer = via("timers", TimerStore.add_timer)
    arm_timers = via("timers", TimerStore.arm_timers)
    release_timers = via("timers", TimerStore.release_timers)
    due_timers = via("timers", TimerStore.due_timers)
    claim_timer = via("timers", TimerStore.claim_timer)
    requeue_running_timers = via("timers", TimerStore.requeue_running_timers)
    finish_timer = via("timers", TimerStore.finish_timer)
    cancel_timers = via("timers", TimerStore.cancel_timers)
    timers_for = via("timers", TimerStore.timers_for)
    incident_timers = via("timers", TimerStore.incident_timers)
    # governance
    add_kill_switch = via("governance", GovernanceStore.add_kill_switch)
    lift_kill_switch = via("governance", GovernanceStore.lift_kill_switch)
    kill_switches = via("governance", GovernanceStore.kill_switches)
    add_approval = via("governance", GovernanceStore.add_approval)
    decide_approval = via("governance", GovernanceStore.decide_approval)
    get_approval = via("governance", GovernanceStore.get_approval)
    approvals = via("governance", GovernanceStore.approvals)
    record_verification = via("governance", GovernanceStore.record_verification)
    verifications_for = via("governance", GovernanceStore.verifications_for)
    recent_verifications = via("governance", GovernanceStore.recent_verifications)
    playbook_modes = via("governance", GovernanceStore.playbook_modes)
    set_playbook_mode = via("governance", GovernanceStore.set_playbook_mode)
    record_audit = via("governance", GovernanceStore.record_audit)
    audit_log = via("governance", GovernanceStore.audit_log)
    # storm
    add_sightings = via("storm", StormStore.add_sightings)
    hold_alerts = via("storm", StormStore.hold_alerts)
    mark_refused = via("storm", StormStore.mark_refused)
    storm_picture = via("storm", StormStore.storm_picture)
    held_alerts = via("storm", StormStore.held_alerts)
    count_held = via("storm", StormStore.count_held)
    open_breaker = via("storm", StormStore.open_breaker)
    current_breaker = via("storm", StormStore.current_breaker)
    close_breaker = via("storm", StormStore.close_breaker)
    last_breaker_close = via("storm", StormStore.last_breaker_close)
    latest_breaker = via("storm", StormStore.latest_breaker)
    get_breaker = via("storm", StormStore.get_breaker)
    # incidents
    current_incident = via("incidents", IncidentStore.current_incident)
    open_incident = via("incidents", IncidentStore.open_incident)
    join_incident = via("incidents", IncidentStore.join_incident)
    hold_incident = via("incidents", IncidentStore.hold_incident)
    close_incident = via("incidents", IncidentStore.close_incident)
    get_incident = via("incidents", IncidentStore.get_incident)
    list_incidents = via("incidents", IncidentStore.list_incidents)
    incident_of_run = via("incidents", IncidentStore.incident_of_run)
    # slack
    report_thread = via("slack", SlackStore.report_thread)
    set_report_thread = via("slack", SlackStore.set_report_thread)
    record_slack_click = via("slack", SlackStore.record_slack_click)
    set_approval_message = via("slack", SlackStore.set_approval_message)
    approval_message = via("slack", SlackStore.approval_message)
    claim_run_now = via("slack", SlackStore.claim_run_now)
    # replicas
    register = via("coordination", ReplicaStore.register)
    heartbeat = via("coordination", ReplicaStore.heartbeat)
    fence_expired = via("coordination", ReplicaStore.fence_expired)
    release = via("coordination", ReplicaStore.release)
    replicas = via("coordination", ReplicaStore.replicas)
    forget_replicas = via("coordination", ReplicaStore.forget_replicas)
    admission = via("coordination", ReplicaStore.admission)
    actions_in_flight = via("coordination", ReplicaStore.actions_in_flight)
    claim_work = via("coordination", ReplicaStore.claim_work)
    hold_channel = via("coordination", ReplicaStore.hold_channel)
