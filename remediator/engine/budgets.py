"""Each playbook's budget beside the guards' ceilings, as `explain`, the admin API and
`check` show it.

A count cap limits an action, it does not refuse the run (playbook/budget.py): what a playbook
declares (`budget=`, or a parameter marked with its `Ceiling`) is what its procedure needs,
the guard setting is the most it gets. This says both, and which one holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from remediator.config import Settings
from remediator.playbook import Ceiling, PlaybookSpec, Registry

PODS_CEILING = "guards.blast_radius.max_pods_per_episode"


def setting(settings: Settings, key: str) -> Any:
    """The value of a dotted configuration key (`guards.blast_radius.max_sessions_per_run`)."""
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


def ceilings(params: BaseModel) -> list[tuple[str, int, str]]:
    """(parameter, its value, the setting bounding it) for each parameter marked `Ceiling`."""
    found = []
    for name, field in type(params).model_fields.items():
        for mark in field.metadata:
            if isinstance(mark, Ceiling):
                found.append((name, getattr(params, name), mark.setting))
    return found


def budget_view(spec: PlaybookSpec, params: BaseModel | None, settings: Settings) -> dict[str, Any]:
    """The playbook's budget: pods of its target per episode, and every capped parameter."""
    ceiling = settings.guards.blast_radius.max_pods_per_episode
    pods = spec.budget.pods
    effective = f"at most {min(pods, ceiling)}" if isinstance(pods, int) else f"at most {ceiling}"
    view: dict[str, Any] = {
        "pods_per_episode": {
            "declared": pods,
            "ceiling": ceiling,
            "setting": PODS_CEILING,
            "says": f"{spec.budget.describe_pods()}, {effective} ({PODS_CEILING} = {ceiling})",
        }
    }
    for name, value, key in ceilings(params) if params is not None else []:
        bound = setting(settings, key)
        view[f"params.{name}"] = {
            "declared": value,
            "ceiling": bound,
            "setting": key,
            "says": f"{name} = {value}, at most {min(value, bound)} ({key} = {bound})",
        }
    return view


def budget_warnings(
    registry: Registry, params: Mapping[str, BaseModel], settings: Settings
) -> list[str]:
    """What `check` warns about: a declared budget or a parameter above its ceiling (the
    ceiling holds: the run caps, it is not refused)."""
    warnings: list[str] = []
    ceiling = settings.guards.blast_radius.max_pods_per_episode
    for spec in registry:
        pods = spec.budget.pods
        if isinstance(pods, int) and pods > ceiling:
            warnings.append(
                f"playbook {spec.name} needs {pods} pods per episode, above {PODS_CEILING} = "
                f"{ceiling}: at most {ceiling} are restarted, the rest escalated"
            )
        for name, value, key in ceilings(params[spec.name]) if spec.name in params else []:
            bound = setting(settings, key)
            if value > bound:
                warnings.append(
                    f"playbooks.{spec.name}.params.{name} = {value} exceeds {key} = {bound}: "
                    f"at most {bound} per run (the oldest first), the rest reported"
                )
    return warnings
