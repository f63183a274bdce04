"""What humans get: approvals (and from Slack), escalation channels, reports."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from remediator.config.base import ConfigError, Section, read_secret


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
