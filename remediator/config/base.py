"""What every section shares: the environment's key form, modes, secrets from files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
)

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
