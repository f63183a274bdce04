"""The daemon's own service: HTTP server, webhook auth, state store, dispatch, admin, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from remediator.config.base import ConfigError, Section, read_secret


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
    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite",
        description="Where the decision record lives: sqlite (one process, a local file) or "
        "postgres (shared by every replica).",
    )
    path: Path = Field(Path("remediator-state.db"), description="SQLite file (WAL mode).")
    synchronous: Literal["full", "normal"] = Field(
        "full",
        description="SQLite: full fsyncs every commit (survives power loss); normal: survives "
        "a crash.",
    )
    dsn: SecretStr | None = Field(
        None,
        description="postgres: the state database's postgresql:// URL (usually from the "
        "environment); never logged.",
    )
    dsn_file: Path | None = Field(None, description="postgres: file holding the URL.")
    pool_min: int = Field(1, ge=0, description="postgres: connections kept open at least.")
    pool_max: int = Field(10, ge=1, description="postgres: connections open at most.")
    batch_max: int = Field(256, ge=1, description="Notifications committed together at most.")
    retention_days: int = Field(30, ge=1, description="Notifications older than this are pruned.")
    lease_seconds: float = Field(
        30.0,
        ge=1.0,
        description="Replica lease: renewed every third of it; a replica silent this long is "
        "fenced by another, which reconciles what it held (failover time).",
    )
    fence_check_seconds: float = Field(
        2.0, gt=0, description="How often each replica looks for expired replicas to fence."
    )

    @model_validator(mode="after")
    def _backend_settings(self) -> StateSettings:
        given = [name for name in ("dsn", "dsn_file") if getattr(self, name) is not None]
        if self.backend == "postgres" and len(given) != 1:
            raise ValueError(
                "state.backend postgres needs exactly one of `state.dsn` and `state.dsn_file` "
                f"(given: {', '.join(given) or 'neither'})"
            )
        if self.backend == "sqlite" and given:
            raise ValueError(
                f"state.{given[0]} is for state.backend postgres; the backend is sqlite"
            )
        if self.pool_min > self.pool_max:
            raise ValueError(
                f"state.pool_min ({self.pool_min}) is above state.pool_max ({self.pool_max})"
            )
        return self

    def dsn_value(self) -> str:
        """The PostgreSQL URL (postgres backend), read from `dsn_file` when given."""
        value = read_secret(self.dsn, self.dsn_file, "state.dsn")
        if not value:
            raise ConfigError(["state.dsn: empty"])
        return value


class DispatchSettings(Section):
    queue_size: int = Field(
        10_000, ge=1, description="Alerts queued in memory; more wait in the store (not lost)."
    )
    workers: int = Field(8, ge=1, description="Playbook runs in parallel.")
    playbook_timeout_seconds: float = Field(
        300.0, gt=0, description="A playbook run taking longer is cancelled and escalated."
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
