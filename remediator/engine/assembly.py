"""Loading what the engine runs: playbooks from disk and their parameters from the config.

Everything here reports every problem at once (for `remediator check`), instead of failing on
the first one.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ValidationError

from remediator.config import Settings, env_key
from remediator.playbook import Registry, load_directories


def load_registry(settings: Settings) -> tuple[Registry, list[str]]:
    registry = Registry()
    problems = [
        f"playbook file {p}"
        for p in load_directories(
            settings.playbook_dirs, registry, builtin=settings.builtin_playbooks
        )
    ]
    return registry, problems


def playbook_names(registry: Registry, settings: Settings) -> list[str]:
    """Every key naming a playbook must address exactly one loaded playbook: by its name, or
    by its environment form (`config.env_key`: `scale_on_lag` for `scale-on-lag`). A form two
    loaded playbooks share (`a-b` and `a_b`) is refused: nobody could tell which is meant."""
    names = {spec.name for spec in registry}
    by_form: dict[str, set[str]] = {}
    for name in names:
        by_form.setdefault(env_key(name), set()).add(name)
    problems: list[str] = []
    tables: list[tuple[str, Mapping[str, object], bool]] = [
        ("playbooks", settings.playbooks, True),
        ("guards.rate_limits.playbooks", settings.guards.rate_limits.playbooks, False),
        ("approval.slack.playbooks", settings.approval.slack.playbooks, False),
    ]
    for where, table, known_only in tables:
        for key in sorted(table):
            meant = by_form.get(key, set())
            if len(meant) > 1:
                both = " and ".join(sorted(meant))
                problems.append(
                    f"{where}.{key}: ambiguous: the loaded playbooks {both} are both written "
                    f"{key.upper()} in the environment; rename one of them"
                )
            elif known_only and key not in names and not meant:
                problems.append(f"{where}.{key}: no such playbook is loaded")
    return problems


def playbook_params(
    registry: Registry, settings: Settings
) -> tuple[dict[str, BaseModel], list[str]]:
    params: dict[str, BaseModel] = {}
    problems = playbook_names(registry, settings)
    for spec in registry:
        raw = settings.playbook(spec.name).params
        try:
            params[spec.name] = spec.params.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"])
                what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"playbooks.{spec.name}.params.{key}: {what}")
    return params, problems
