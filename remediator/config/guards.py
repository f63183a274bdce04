"""The guards: kill switches, rate limits, blast radius, storm breaker, concurrency, incidents."""

from __future__ import annotations

from pydantic import (
    Field,
)

from remediator.config.base import Section


class KillSwitchSettings(Section):
    default_expiry_seconds: float | None = Field(
        None, gt=0, description="Expiry of a pause given without one; unset: until resumed."
    )


class RateWindow(Section):
    max_actions: int = Field(ge=0, description="Acting runs allowed in the window (0: none).")
    window_seconds: float = Field(3600.0, gt=0, description="Length of the sliding window.")


class RateLimitSettings(Section):
    """Counted from the durable record, so they hold across restarts. The unit is one acting
    run: a playbook run that made at least one real action (not a dry run, not refused)."""

    per_target_per_episode: int = Field(
        1, ge=1, description="Acting runs on one target within one alert episode."
    )
    per_target: RateWindow = Field(
        RateWindow(max_actions=3), description="Acting runs on one target (workload) per window."
    )
    per_playbook: RateWindow = Field(
        RateWindow(max_actions=20), description="Acting runs of one playbook per window."
    )
    playbooks: dict[str, RateWindow] = Field(
        default_factory=dict, description="Per-playbook override of `per_playbook`, by name."
    )
    all_playbooks: RateWindow = Field(
        RateWindow(max_actions=50), description="Acting runs of all playbooks together per window."
    )
    target_cooldown_seconds: float = Field(
        0.0, ge=0, description="Quiet time after an acting run before the same target again."
    )
    playbook_cooldown_seconds: float = Field(
        0.0, ge=0, description="Quiet time after an acting run before the same playbook again."
    )


class BlastRadiusSettings(Section):
    allow_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces actions may touch (shell wildcards); empty: all not denied.",
    )
    deny_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system"],
        description="Namespaces never touched (shell wildcards); wins over the allow list.",
    )
    max_replicas: int = Field(50, ge=1, description="No scale above this many replicas.")
    min_replicas: int = Field(1, ge=0, description="No scale below this many replicas.")
    max_scale_step: int = Field(5, ge=1, description="Largest change of replicas in one action.")
    max_pods_per_episode: int = Field(
        10,
        ge=1,
        description="Ceiling of the pods deleted or evicted per workload within one episode; "
        "within it each playbook takes the budget it declares (one pod unless it says more; a "
        "rolling restart one per replica).",
    )
    max_sessions_per_run: int = Field(
        10,
        ge=1,
        description="Ceiling of the database sessions one playbook run terminates: the oldest "
        "that many, the rest reported (a playbook parameter above it is warned about).",
    )


class StormSettings(Section):
    """Decided when a notification is digested, on every firing alert that arrived with a
    playbook for it (refused or not), before any of them is dispatched."""

    distinct_targets: int = Field(
        10, ge=1, description="More distinct targets alerting within the window opens it."
    )
    window_seconds: float = Field(300.0, gt=0, description="Window for `distinct_targets`.")
    refusals: int | None = Field(
        10,
        ge=1,
        description="Also open when more alerts than this were refused before acting (no "
        "valid target, scope, a guard) within the window; unset: off.",
    )
    share_of_known_workloads: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Also open when this share of the targets seen in the known-workloads "
        "window alerts within the window, overall or in one namespace; unset: off.",
    )
    known_workloads_window_seconds: float = Field(
        7 * 86400.0, gt=0, description="How far back targets count as known workloads."
    )
    min_targets_for_share: int = Field(
        5, ge=1, description="The share rule needs at least this many targets in the window."
    )
    failed_verification_share: float = Field(
        0.5, gt=0, le=1, description="Open above this share of failed recent verifications."
    )
    min_verifications: int = Field(
        4, ge=1, description="The failed share needs at least this many recent verifications."
    )
    verification_window_seconds: float = Field(
        3600.0, gt=0, description="Verifications this recent count for the failed share."
    )
    expiry_seconds: float | None = Field(
        None, gt=0, description="Close by itself after this long; unset: an operator closes it."
    )


class ConcurrencySettings(Section):
    max_in_flight: int = Field(
        4, ge=1, description="Real actions executing at once; more are refused and escalated."
    )


class GuardSettings(Section):
    """Checked immediately before every action, in this order."""

    kill_switch: KillSwitchSettings = KillSwitchSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    blast_radius: BlastRadiusSettings = BlastRadiusSettings()
    storm: StormSettings = StormSettings()
    concurrency: ConcurrencySettings = ConcurrencySettings()


class IncidentSettings(Section):
    quiet_seconds: float = Field(
        1800.0,
        gt=0,
        description="An incident (a target's trouble across alert episodes) ends when no "
        "alert of it was seen for this long; an escalated one holds further runs on the "
        "target until then, or until an operator clears it.",
    )
