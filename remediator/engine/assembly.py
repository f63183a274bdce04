"""Loading what the engine runs: playbooks from disk and their parameters from the config.

Everything here reports every problem at once (for `remediator check`), instead of failing on
the first one.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from remediator.config import Settings
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


def playbook_params(
    registry: Registry, settings: Settings
) -> tuple[dict[str, BaseModel], list[str]]:
    params: dict[str, BaseModel] = {}
    problems: list[str] = []
    for name in sorted(set(settings.playbooks) - {spec.name for spec in registry}):
        problems.append(f"playbooks.{name}: no such playbook is loaded")
    for spec in registry:
        raw = settings.playbooks[spec.name].params if spec.name in settings.playbooks else {}
        try:
            params[spec.name] = spec.params.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"])
                what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"playbooks.{spec.name}.params.{key}: {what}")
    return params, problems
