"""The systems playbooks reach: PostgreSQL databases, Kubernetes, Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from remediator.config.base import ConfigError, Section, read_secret


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
