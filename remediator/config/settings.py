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
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    PrivateAttr,
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

from remediator.config.base import _ENVIRON, ENV_PREFIX, ConfigError, Mode, playbook_entry
from remediator.config.clients import DatabaseSettings, KubernetesSettings, PrometheusSettings
from remediator.config.delivery import ApprovalSettings, EscalationSettings, ReportSettings
from remediator.config.guards import GuardSettings, IncidentSettings
from remediator.config.playbooks import GitOpsSettings, PlaybookSettings
from remediator.config.service import (
    AdminSettings,
    DispatchSettings,
    LoggingSettings,
    ServerSettings,
    StateSettings,
    WebhookSettings,
)


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
