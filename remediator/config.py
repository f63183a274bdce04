"""Settings: the one place that reads the config file and the environment.

Every other module receives the parsed `Settings` (or a section of it) explicitly, so a test can
build any configuration in memory and nothing changes behind its back. The YAML file is optional;
every key can be overridden from the environment as ``REMEDIATOR_<SECTION>__<KEY>``.

Keys that are playbook names (`playbooks.<name>`, `guards.rate_limits.playbooks.<name>`,
`approval.slack.playbooks.<name>`) cannot carry a `-` in an environment variable, and the
environment's keys arrive lower-cased: there a playbook is named by its environment form
(`env_key`: `scale-on-lag` -> `scale_on_lag`), and `playbook_entry` finds either spelling.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "REMEDIATOR_"

# The environment a parse reads; load_settings sets it so tests can pass their own mapping.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("remediator_environ", default=None)


T = TypeVar("T")


def env_key(name: str) -> str:
    """A playbook name as an environment variable's key names it, once the parser has
    lower-cased it: every character but a letter, a digit or `_` written `_`.
    `REMEDIATOR_PLAYBOOKS__SCALE_ON_LAG__PARAMS__PARTITIONS` -> `playbooks.scale_on_lag`, which
    addresses the playbook `scale-on-lag`."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merged(base[k], v) if k in base else v for k, v in over.items()}}
    return over


def playbook_entry(table: Mapping[str, T], name: str) -> T | None:
    """The entry for playbook `name` in a map keyed by playbook names: under its exact name,
    under its environment form (`env_key`), or both merged, the environment form winning key
    by key (it is how the environment, which wins over the file, writes the name).

    Whether an environment form is ambiguous (two loaded playbooks share it) is decided at
    start-up, where the loaded names are known (`engine/assembly.py`)."""
    exact = table.get(name)
    alias = env_key(name)
    env = table.get(alias) if alias != name else None
    if env is None or exact is None:
        return exact if env is None else env
    if isinstance(exact, BaseModel) and isinstance(env, BaseModel):
        both = _merged(exact.model_dump(exclude_unset=True), env.model_dump(exclude_unset=True))
        return type(exact).model_validate(both)
    return env


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Mode(StrEnum):
    SHADOW = "shadow"
    APPROVE = "approve"
    AUTO = "auto"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """A secret given inline (usually from the environment) or in a file; the file wins."""
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"{what}: cannot read {file}: {exc.strerror}"]) from exc
    return value.get_secret_value() if value is not None else None


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(9095, ge=0, le=65535, description="Port; 0 picks a free one.")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Bigger webhook bodies get 413.")


class WebhookAuthSettings(Section):
    disabled: bool = Field(False, description="Accept unauthenticated webhooks (warned at start).")
    bearer_token: SecretStr | None = Field(
        None, description="Token Alertmanager sends as `Authorization: Bearer`."
    )
    bearer_token_file: Path | None = Field(None, description="File holding the bearer token.")
    basic_username: str | None = Field(None, description="HTTP basic user name.")
    basic_password: SecretStr | None = Field(None, description="HTTP basic password.")
    basic_password_file: Path | None = Field(None, description="File holding the password.")

    def bearer(self) -> str | None:
        return read_secret(self.bearer_token, self.bearer_token_file, "webhook.auth.bearer_token")

    def basic(self) -> tuple[str, str] | None:
        password = read_secret(
            self.basic_password, self.basic_password_file, "webhook.auth.basic_password"
        )
        if self.basic_username is None or password is None:
            return None
        return self.basic_username, password


class WebhookSettings(Section):
    auth: WebhookAuthSettings = WebhookAuthSettings()
    max_alerts_per_notification: int = Field(1000, ge=1, description="More alerts: 422.")
    max_labels_per_alert: int = Field(128, ge=1, description="More labels on an alert: 422.")
    max_label_value_chars: int = Field(
        4096, ge=16, description="Longer label or annotation values (characters): 422."
    )
    max_backlog: int = Field(
        10_000,
        ge=1,
        description="Notifications acknowledged but not yet turned into episodes; more: 503.",
    )


class StateSettings(Section):
    backend: Literal["sqlite"] = Field("sqlite", description="Where the decision record lives.")
    path: Path = Field(Path("remediator-state.db"), description="SQLite file (WAL mode).")
    synchronous: Literal["full", "normal"] = Field(
        "full",
        description="full: fsync every commit (survives power loss); normal: survives a crash.",
    )
    batch_max: int = Field(256, ge=1, description="Notifications committed together at most.")
    retention_days: int = Field(30, ge=1, description="Notifications older than this are pruned.")


class DispatchSettings(Section):
    queue_size: int = Field(
        10_000, ge=1, description="Alerts queued in memory; more wait in the store (not lost)."
    )
    workers: int = Field(8, ge=1, description="Playbook runs in parallel.")
    playbook_timeout_seconds: float = Field(
        300.0, gt=0, description="A playbook run taking longer is cancelled and escalated."
    )


class PlaybookVerifySettings(Section):
    bake_seconds: float | None = Field(
        None,
        ge=0,
        description="How long after acting the verification waits; default: the playbook's own.",
    )


GitOpsPolicy = Literal["act", "escalate", "suspend"]
_NO_ARGO_SUSPEND = (
    "suspend is not supported for Argo CD: it has no switch that pauses self-heal for one "
    "object (only the whole Application's automated sync); use escalate, or act with "
    "ignoreDifferences by managedFieldsManagers (README, GitOps)"
)


class GitOpsPolicies(Section):
    """What a playbook may do to an object a GitOps controller manages, per kind of change."""

    scale: GitOpsPolicy = Field(
        "escalate",
        description="A change of replicas (the workload's scale, an HPA's minReplicas, KEDA's "
        "paused-replicas): escalate names the change to make in Git and changes nothing.",
    )
    rollback: GitOpsPolicy = Field(
        "escalate", description="A rollback (the pod template of an earlier revision)."
    )
    restart: GitOpsPolicy = Field(
        "act",
        description="A rollout restart (the `restartedAt` pod template annotation, which the "
        "controllers leave alone when it is not in Git).",
    )


class GitOpsPolicyOverrides(Section):
    scale: GitOpsPolicy | None = Field(None, description="Overrides the scale policy.")
    rollback: GitOpsPolicy | None = Field(None, description="Overrides the rollback policy.")
    restart: GitOpsPolicy | None = Field(None, description="Overrides the restart policy.")


class PlaybookGitOpsSettings(Section):
    argocd: GitOpsPolicyOverrides = Field(
        default_factory=GitOpsPolicyOverrides, description="For objects Argo CD manages."
    )
    flux: GitOpsPolicyOverrides = Field(
        default_factory=GitOpsPolicyOverrides, description="For objects Flux manages."
    )

    @model_validator(mode="after")
    def _argocd_cannot_suspend(self) -> PlaybookGitOpsSettings:
        if "suspend" in self.argocd.model_dump().values():
            raise ValueError(f"gitops.argocd: {_NO_ARGO_SUSPEND}")
        return self


class ArgoCDSettings(Section):
    policy: GitOpsPolicies = Field(
        default_factory=GitOpsPolicies, description="Policies for objects Argo CD manages."
    )
    label_tracking: bool = Field(
        False,
        description="Also take the `instance_label` label as Argo CD's mark (its `label` "
        "tracking method); off because Helm charts and other tools set that label too.",
    )
    instance_label: str = Field(
        "app.kubernetes.io/instance",
        description="Argo CD's `application.instanceLabelKey`, read under `label_tracking`.",
    )
    check_after_seconds: float = Field(
        360.0,
        gt=0,
        description="Whether a change stuck is checked this long after it (two of Argo CD's "
        "default 3-minute reconciliations).",
    )

    @model_validator(mode="after")
    def _cannot_suspend(self) -> ArgoCDSettings:
        if "suspend" in self.policy.model_dump().values():
            raise ValueError(_NO_ARGO_SUSPEND)
        return self


class FluxSettings(Section):
    policy: GitOpsPolicies = Field(
        default_factory=GitOpsPolicies, description="Policies for objects Flux manages."
    )
    check_after_seconds: float = Field(
        1200.0,
        gt=0,
        description="Whether a change stuck is checked this long after it (two reconciliations "
        "at a 10-minute interval).",
    )
    suspend_seconds: float = Field(
        3600.0,
        ge=0,
        description="Under `suspend`, the object's reconciliation is restored when the alert "
        "resolves, or after this long at the latest, even while the alert fires.",
    )


class GitOpsSettings(Section):
    """Objects a GitOps controller manages (Argo CD, Flux), known by the marks it writes on
    them; see README, GitOps."""

    argocd: ArgoCDSettings = Field(default_factory=ArgoCDSettings, description="Argo CD.")
    flux: FluxSettings = Field(default_factory=FluxSettings, description="Flux.")
    check_after_seconds: float | None = Field(
        360.0,
        gt=0,
        description="Whether a change to an object no GitOps controller marks stuck is checked "
        "this long after it; unset: not checked.",
    )


class PlaybookSettings(Section):
    enabled: bool = Field(True, description="A disabled playbook never matches.")
    mode: Mode | None = Field(None, description="Overrides the global mode for this playbook.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The playbook's parameters (see its docstring)."
    )
    verify: PlaybookVerifySettings = Field(
        default_factory=PlaybookVerifySettings, description="Its verification after acting."
    )
    gitops: PlaybookGitOpsSettings = Field(
        default_factory=PlaybookGitOpsSettings,
        description="Its GitOps policies, overriding `gitops.<controller>.policy` per kind.",
    )


class DatabaseSettings(Section):
    """One PostgreSQL database playbooks may act on; alerts can only choose among these."""

    dsn: SecretStr | None = Field(
        None, description="postgresql:// URL (usually from the environment); never logged."
    )
    dsn_file: Path | None = Field(None, description="File holding the URL; wins over `dsn`.")
    datname: str | None = Field(
        None, description="Database whose sessions are managed; default: the one the DSN names."
    )
    aliases: list[str] = Field(
        default_factory=list, description="Other alert label values that name this database."
    )
    protected_applications: list[str] = Field(
        default_factory=lambda: ["pg_dump"],
        description="application_name values whose sessions are never terminated.",
    )
    connect_timeout_seconds: float = Field(
        5.0, gt=0, description="Seconds to wait for a connection; then the run fails."
    )
    statement_timeout_ms: int = Field(10_000, ge=100, description="Server-side, per statement.")
    terminate_wait_ms: int = Field(
        500, ge=0, description="How long pg_terminate_backend waits for each session to exit."
    )

    @model_validator(mode="after")
    def _has_dsn(self) -> DatabaseSettings:
        if self.dsn is None and self.dsn_file is None:
            raise ValueError("set `dsn` or `dsn_file`")
        return self

    def dsn_value(self) -> str:
        """Read on every connection, so a rotated secret file is picked up without a restart."""
        value = read_secret(self.dsn, self.dsn_file, "dsn")
        if not value:
            raise ConfigError(["dsn: empty"])
        return value


class KubernetesRetrySettings(Section):
    """Transient failures (5xx, 429, timeouts, dropped connections) are retried with a capped
    exponential backoff with full jitter; any other 4xx fails at once with the API's message."""

    attempts: int = Field(4, ge=1, description="Tries per API call, the first one included.")
    initial_backoff_seconds: float = Field(
        0.5, gt=0, description="Backoff scale: the n-th retry waits up to this times 2^n."
    )
    max_backoff_seconds: float = Field(8.0, gt=0, description="Cap of one backoff wait.")
    max_retry_after_seconds: float = Field(
        30.0, gt=0, description="Longest `Retry-After` of a 429/503 that is waited for."
    )


class KubernetesSettings(Section):
    """How the daemon reaches the Kubernetes API (the `kube=` keyword of playbooks)."""

    mode: Literal["none", "in_cluster", "kubeconfig", "url"] = Field(
        "none",
        description="none: no Kubernetes client (playbooks that need one are refused); "
        "in_cluster: the pod's service account; kubeconfig: a kubeconfig file; url: `url` "
        "with `token_file` and `ca_file`.",
    )
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file (mode kubeconfig); unset: $KUBECONFIG or ~/.kube/config."
    )
    context: str | None = Field(
        None, description="kubeconfig context (mode kubeconfig); unset: its current-context."
    )
    url: str | None = Field(None, description="API server URL (mode url), e.g. https://host:6443.")
    token_file: Path | None = Field(
        None, description="Bearer token file (mode url); re-read on every request (rotation)."
    )
    ca_file: Path | None = Field(None, description="CA bundle for the API server (mode url).")
    verify_tls: bool = Field(True, description="Check the API server's certificate (mode url).")
    request_timeout_seconds: float = Field(
        10.0, gt=0, description="Per API request; a timeout counts as a transient failure."
    )
    poll_seconds: float = Field(
        2.0, gt=0, description="How often a playbook waiting on a rollout or a pod re-reads it."
    )
    retry: KubernetesRetrySettings = KubernetesRetrySettings()

    @model_validator(mode="after")
    def _mode_is_usable(self) -> KubernetesSettings:
        if self.mode == "url" and not self.url:
            raise ValueError("kubernetes.mode is url but kubernetes.url is not set")
        return self


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


class SlackApprovalSettings(Section):
    """Approve and Deny buttons on the Slack report of a run waiting for approval, answered at
    `POST /slack/interactions`. On when a signing secret is set; needs the bot token of
    `reports.slack` (the buttons are in the episode's thread, the decision replaces them)."""

    signing_secret: SecretStr | None = Field(
        None, description="The Slack app's signing secret (Basic Information); unset: off."
    )
    signing_secret_file: Path | None = Field(None, description="File holding the signing secret.")
    playbooks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Who may decide runs of a playbook: Slack user IDs (U...) or user-group "
        "IDs (S...), by playbook name.",
    )
    namespaces: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Who may decide runs whose target is in a namespace, by namespace; a user "
        "listed for the run's playbook or for its namespace may decide it.",
    )

    def secret(self) -> str | None:
        secret = read_secret(
            self.signing_secret, self.signing_secret_file, "approval.slack.signing_secret"
        )
        if self.enabled and not secret:
            raise ConfigError(["approval.slack.signing_secret: empty"])
        return secret

    @property
    def enabled(self) -> bool:
        return self.signing_secret is not None or self.signing_secret_file is not None

    @model_validator(mode="after")
    def _ids_look_right(self) -> SlackApprovalSettings:
        for where, table in (("playbooks", self.playbooks), ("namespaces", self.namespaces)):
            for key, ids in table.items():
                bad = [i for i in ids if not i or i[0] not in "UWS" or not i.isalnum()]
                if bad:
                    raise ValueError(
                        f"approval.slack.{where}.{key}: {bad} are not Slack user (U..., W...) "
                        "or user-group (S...) IDs"
                    )
        return self


class ApprovalSettings(Section):
    timeout_seconds: float = Field(
        1800.0, gt=0, description="A pending approval not decided by then expires and escalates."
    )
    slack: SlackApprovalSettings = SlackApprovalSettings()


class IncidentSettings(Section):
    quiet_seconds: float = Field(
        1800.0,
        gt=0,
        description="An incident (a target's trouble across alert episodes) ends when no "
        "alert of it was seen for this long; an escalated one holds further runs on the "
        "target until then, or until an operator clears it.",
    )


class PrometheusSettings(Section):
    url: str | None = Field(
        None,
        description="Prometheus base URL for verification; unset: every verification is "
        "`unknown` and escalated.",
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Per verification query.")
    retries: int = Field(1, ge=0, description="Quick retries of a failed query.")
    bearer_token: SecretStr | None = Field(None, description="Sent as `Authorization: Bearer`.")
    bearer_token_file: Path | None = Field(None, description="File holding the bearer token.")
    verify_tls: bool = Field(True, description="Check the server certificate.")

    def bearer(self) -> str | None:
        return read_secret(self.bearer_token, self.bearer_token_file, "prometheus.bearer_token")


class SlackEscalationSettings(Section):
    channel: str | None = Field(None, description="Channel ID or name; unset: Slack is off.")
    token: SecretStr | None = Field(None, description="Bot token (xoxb-...).")
    token_file: Path | None = Field(None, description="File holding the bot token.")
    mention: str = Field(
        "<!here>", description="Who is called, e.g. `<!subteam^S0123ABC>` for the on-call group."
    )
    base_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per request.")

    def token_value(self) -> str | None:
        return read_secret(self.token, self.token_file, "escalation.slack.token")


PagerDutySeverity = Literal["critical", "error", "warning", "info"]
_PAGERDUTY_SEVERITIES: dict[str, PagerDutySeverity] = {
    "critical": "critical",
    "page": "critical",
    "error": "error",
    "warning": "warning",
    "info": "info",
}


class PagerDutySettings(Section):
    routing_key: SecretStr | None = Field(
        None, description="Events API v2 integration key; unset (and no file): PagerDuty is off."
    )
    routing_key_file: Path | None = Field(None, description="File holding the routing key.")
    events_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="Events API v2 endpoint."
    )
    severity_map: dict[str, PagerDutySeverity] = Field(
        default_factory=lambda: dict(_PAGERDUTY_SEVERITIES),
        description="Alert `severity` label -> PagerDuty severity.",
    )
    default_severity: PagerDutySeverity = Field(
        "error", description="For alerts whose severity is not in the map."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Per request.")

    def key(self) -> str | None:
        return read_secret(
            self.routing_key, self.routing_key_file, "escalation.pagerduty.routing_key"
        )


class OutgoingWebhookSettings(Section):
    url: str | None = Field(None, description="URL escalations are POSTed to as JSON; unset: off.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    bearer_token: SecretStr | None = Field(None, description="Sent as `Authorization: Bearer`.")
    bearer_token_file: Path | None = Field(None, description="File holding the bearer token.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per request.")

    def bearer(self) -> str | None:
        return read_secret(self.bearer_token, self.bearer_token_file, "escalation.webhook")


class DeliverySettings(Section):
    """How the outbox retries a channel: quick retries within one attempt, then a persisted
    capped exponential backoff with jitter between attempts (or the channel's Retry-After)."""

    quick_retries: int = Field(2, ge=0, description="Immediate retries within one attempt.")
    quick_wait_seconds: float = Field(0.2, ge=0, description="Base wait between quick retries.")
    initial_backoff_seconds: float = Field(2.0, gt=0, description="Wait after a failed attempt.")
    max_backoff_seconds: float = Field(300.0, gt=0, description="Cap of the backoff.")
    jitter_seconds: float = Field(1.0, ge=0, description="Random extra wait, up to this.")
    poll_seconds: float = Field(5.0, gt=0, description="Idle channels look for work this often.")
    dead_letter_window_seconds: float = Field(
        900.0,
        gt=0,
        description="After a dead letter is escalated, further dead letters within this long "
        "are counted (metrics, admin API, the next escalation) but not escalated on their own.",
    )


class EscalationSettings(Section):
    slack: SlackEscalationSettings = SlackEscalationSettings()
    pagerduty: PagerDutySettings = PagerDutySettings()
    webhook: OutgoingWebhookSettings = OutgoingWebhookSettings()
    delivery: DeliverySettings = DeliverySettings()
    aggregate_window_seconds: float = Field(
        600.0,
        ge=0,
        description="Refusals of the same kind (reason class and playbook) within this window "
        "are one escalation: the first goes out, the rest are counted and summarised once "
        "when it ends; 0: off.",
    )
    page_budget: int | None = Field(
        10,
        ge=1,
        description="At most this many escalations per paging channel (PagerDuty, webhook, "
        "Slack) within `page_budget_window_seconds`; the rest go out as one summary when the "
        "window ends (the storm page always goes out); unset: no budget.",
    )
    page_budget_window_seconds: float = Field(600.0, gt=0, description="Window of `page_budget`.")
    page_in_shadow: bool = Field(
        False,
        description="Page (PagerDuty, webhook, Slack mention) in shadow mode too; off: a "
        "shadow-mode escalation goes to the Slack report as `would have escalated`.",
    )

    @model_validator(mode="after")
    def _slack_is_usable(self) -> EscalationSettings:
        slack = self.slack
        if slack.channel is not None and slack.token is None and slack.token_file is None:
            raise ValueError("escalation.slack.channel is set but no token(_file)")
        return self


class SlackReportSettings(Section):
    """Where reports go: a bot token (`chat.postMessage`, one thread per episode) or, in a
    simpler setup, an incoming webhook URL (one message per report, no threads)."""

    channel: str | None = Field(
        None, description="Channel ID or name for the bot token; unset (and no webhook): off."
    )
    token: SecretStr | None = Field(None, description="Bot token (xoxb-...), `chat:write` scope.")
    token_file: Path | None = Field(None, description="File holding the bot token.")
    webhook_url: SecretStr | None = Field(
        None, description="Incoming webhook URL, used when no channel is set (it is a secret)."
    )
    webhook_url_file: Path | None = Field(None, description="File holding the webhook URL.")
    base_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    timeout_seconds: float = Field(10.0, gt=0, description="Per request.")

    def token_value(self) -> str | None:
        return read_secret(self.token, self.token_file, "reports.slack.token")

    def webhook_value(self) -> str | None:
        return read_secret(self.webhook_url, self.webhook_url_file, "reports.slack.webhook_url")

    @property
    def enabled(self) -> bool:
        return bool(self.channel) or self.webhook_url is not None or bool(self.webhook_url_file)

    @model_validator(mode="after")
    def _has_credentials(self) -> SlackReportSettings:
        if self.channel and self.token is None and self.token_file is None:
            raise ValueError("reports.slack.channel is set but no token(_file)")
        return self


class ReportSettings(Section):
    """Slack reports of what was done (silent healing: reports never page)."""

    slack: SlackReportSettings = SlackReportSettings()
    batch_threshold: int = Field(
        10,
        ge=1,
        description="More reports than this waiting at once (an alert storm) go out as one "
        "summary message.",
    )
    batch_window_seconds: float = Field(
        3.0,
        ge=0,
        description="Reports wait this long before going out, so a storm can be summarised.",
    )
    progress_after_seconds: float = Field(
        5.0,
        ge=0,
        description="A run still going this long after its start or one of its actions posts "
        "that step in the episode's thread (0: every step at once; a quicker run says it all "
        "in its report).",
    )
    admin_url: str | None = Field(
        None, description="Base URL of the admin API, linked from summaries and reports."
    )


class AdminTokenSettings(Section):
    name: str = Field(min_length=1, description="Who the token is; recorded in the audit log.")
    role: Literal["read", "operator"] = Field(
        "read", description="read: GET endpoints only; operator: also every mutation."
    )
    token: SecretStr | None = Field(None, description="The bearer token.")
    token_file: Path | None = Field(None, description="File holding the bearer token.")

    @model_validator(mode="after")
    def _has_token(self) -> AdminTokenSettings:
        if self.token is None and self.token_file is None:
            raise ValueError(f"admin token {self.name!r}: set `token` or `token_file`")
        return self

    def value(self) -> str:
        secret = read_secret(self.token, self.token_file, f"admin.tokens[{self.name}]")
        if not secret:
            raise ConfigError([f"admin.tokens[{self.name}]: empty token"])
        return secret


class AdminSettings(Section):
    """The admin API under /admin/ on the same server; no tokens: every request gets 401."""

    tokens: list[AdminTokenSettings] = Field(
        default_factory=list, description="Bearer tokens: `{name, role, token or token_file}`."
    )

    @model_validator(mode="after")
    def _names_are_unique(self) -> AdminSettings:
        names = [t.name for t in self.tokens]
        if len(names) != len(set(names)):
            raise ValueError("admin.tokens: names must be unique")
        return self


class LoggingSettings(Section):
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, JSON lines otherwise."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")


class Settings(BaseSettings):
    """The whole configuration; see README "Configuration reference" for every key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    mode: Mode = Field(Mode.SHADOW, description="Default mode of every playbook.")
    server: ServerSettings = ServerSettings()
    webhook: WebhookSettings = WebhookSettings()
    state: StateSettings = StateSettings()
    dispatch: DispatchSettings = DispatchSettings()
    logging: LoggingSettings = LoggingSettings()
    builtin_playbooks: bool = Field(True, description="Load the playbooks shipped in `playbooks/`.")
    playbook_dirs: list[Path] = Field(
        default_factory=list, description="Directories of your own playbook files (*.py)."
    )
    playbooks: dict[str, PlaybookSettings] = Field(
        default_factory=dict, description="Per-playbook settings, by playbook name."
    )
    databases: dict[str, DatabaseSettings] = Field(
        default_factory=dict, description="PostgreSQL databases by name (see DatabaseSettings)."
    )
    kubernetes: KubernetesSettings = KubernetesSettings()
    guards: GuardSettings = GuardSettings()
    approval: ApprovalSettings = ApprovalSettings()
    incidents: IncidentSettings = IncidentSettings()
    gitops: GitOpsSettings = GitOpsSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    escalation: EscalationSettings = EscalationSettings()
    reports: ReportSettings = ReportSettings()
    admin: AdminSettings = AdminSettings()
    # `playbook()`'s answers, merged once per name (the settings never change).
    _playbook_cache: dict[str, PlaybookSettings] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _auth_is_usable(self) -> Settings:
        auth = self.webhook.auth
        if auth.basic_username is not None and (
            auth.basic_password is None and auth.basic_password_file is None
        ):
            raise ValueError("webhook.auth.basic_username is set but no basic_password(_file)")
        return self

    @model_validator(mode="after")
    def _slack_approvals_can_post(self) -> Settings:
        if self.approval.slack.enabled and not self.reports.slack.channel:
            raise ValueError(
                "approval.slack needs reports.slack.channel and its bot token: the buttons are "
                "posted in the episode's thread and replaced by the decision"
            )
        return self

    @model_validator(mode="after")
    def _database_names_are_unique(self) -> Settings:
        seen: dict[str, str] = {}
        for name, database in self.databases.items():
            for label in [name, *database.aliases]:
                if seen.setdefault(label, name) != name:
                    raise ValueError(
                        f"databases: {label!r} names both {seen[label]!r} and {name!r}"
                    )
        return self

    def playbook(self, name: str) -> PlaybookSettings:
        """The settings of playbook `name` (`playbooks.<name>`, under its exact name or its
        environment form, see `playbook_entry`); the defaults when it has none."""
        found = self._playbook_cache.get(name)
        if found is None:
            found = playbook_entry(self.playbooks, name) or PlaybookSettings()
            self._playbook_cache[name] = found
        return found

    def bake_of(self, playbook: str) -> timedelta | None:
        """The configured bake time of a playbook's verification (None: the playbook's)."""
        bake = self.playbook(playbook).verify.bake_seconds
        return None if bake is None else timedelta(seconds=bake)

    def mode_of(self, playbook: str) -> Mode:
        return self.playbook(playbook).mode or self.mode

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is passed as init data (see load_settings), so the environment overrides it.
        return _ScopedEnvSource(settings_cls), init_settings


class _ScopedEnvSource(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        return parse_env_vars(
            os.environ if environ is None else environ,
            self.case_sensitive,
            self.env_ignore_empty,
            self.env_parse_none_str,
        )


def _format_error(err: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    return f"{key}: {err['msg']}"


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the YAML file (if any) and the environment; raise ConfigError naming each bad key."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([f"{path}: {exc.strerror}"]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: invalid YAML: {exc}"]) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: the top level must be a mapping of keys"])
        data = loaded
    token = _ENVIRON.set(environ)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError([_format_error(e) for e in exc.errors()]) from exc
    finally:
        _ENVIRON.reset(token)
