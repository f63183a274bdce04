"""Every metric the daemon exports, on a registry passed in (a fresh one per test).

The names are a contract: `alert_rules/remediator.rules.yml` alerts on them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.notifications = Counter(
            "remediator_notifications",
            "Webhook notifications by result (recorded, unauthorized, bad_request, ...).",
            ["result"],
            registry=r,
        )
        self.alerts = Counter(
            "remediator_alerts", "Alerts received, by their own status.", ["status"], registry=r
        )
        # Bound once: the webhook counts these on every request, and `labels()` is a locked
        # dictionary lookup each time.
        self.recorded = self.notifications.labels(result="recorded")
        self.alerts_firing = self.alerts.labels(status="firing")
        self.alerts_resolved = self.alerts.labels(status="resolved")
        self.episodes_opened = Counter(
            "remediator_episodes_opened", "New alert episodes (fingerprint, startsAt).", registry=r
        )
        self.episodes_closed = Counter(
            "remediator_episodes_closed", "Episodes closed by a resolved alert.", registry=r
        )
        self.queue_depth = Gauge(
            "remediator_dispatch_queue_depth", "Alerts waiting for a dispatch worker.", registry=r
        )
        self.intake_depth = Gauge(
            "remediator_intake_queue_depth", "Notifications waiting to be recorded.", registry=r
        )
        self.digest_backlog = Gauge(
            "remediator_digest_backlog",
            "Notifications acknowledged and journaled, not yet turned into episodes.",
            registry=r,
        )
        self.digest_failures = Counter(
            "remediator_digest_failures",
            "Slices of journaled notifications that could not be digested (retried with "
            "backoff; a store that is down or locked).",
            registry=r,
        )
        self.digest_seconds = Histogram(
            "remediator_digest_batch_seconds",
            "Time to turn one batch of journaled notifications into episodes.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.runs = Counter(
            "remediator_playbook_runs",
            "Playbook runs by playbook and outcome "
            "(acted, shadow, noop, skipped, refused, failed, pending_approval).",
            ["playbook", "outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "remediator_webhook_latency_seconds",
            "Time from request to acknowledgement (recorded durably).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.intake_batch_seconds = Histogram(
            "remediator_intake_batch_seconds",
            "Time to record one batch of notifications durably (group commit).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.intake_batch_size = Histogram(
            "remediator_intake_batch_size",
            "Notifications recorded together in one batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.verifications = Counter(
            "remediator_verifications",
            "Verification outcomes (verified, not_verified, unknown).",
            ["playbook", "result"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "remediator_breaker_open", "1 while the storm breaker stops remediation.", registry=r
        )
        self.storm_held = Counter(
            "remediator_storm_held_alerts",
            "Firing alerts held by the open storm breaker instead of dispatched.",
            registry=r,
        )
        self.escalation_deliveries = Counter(
            "remediator_escalation_deliveries",
            "Escalation and report deliveries by channel and result (ok, error, dead_letter).",
            ["channel", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "remediator_outbox_pending",
            "Reports and escalations waiting for delivery.",
            ["channel"],
            registry=r,
        )
        self.outbox_dead_letters = Gauge(
            "remediator_outbox_dead_letters",
            "Messages a channel refused for good or could not render, waiting for a re-send "
            "(admin API /admin/dead-letters).",
            ["channel"],
            registry=r,
        )
        self.escalations = Counter(
            "remediator_escalations", "Escalations raised, by reason kind.", ["reason"], registry=r
        )
        self.guard_refusals = Counter(
            "remediator_guard_refusals",
            "Actions refused, by guard (kill_switch, rate_limit, blast_radius, storm_breaker, "
            "concurrency, approval).",
            ["guard"],
            registry=r,
        )
        self.claims = Counter(
            "remediator_claims",
            "What this replica claimed: runs, timers, dispatch work, outbox channel leases, "
            "and expired replicas it fenced and reconciled (kind: run, timer, work, channel, "
            "replica).",
            ["kind"],
            registry=r,
        )
        self.replica_fenced = Gauge(
            "remediator_replica_fenced",
            "1 once this replica was fenced (it stops acting and exits to be restarted).",
            registry=r,
        )
