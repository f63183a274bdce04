"""`remediator check --online`: ask the real systems what the first incident would find out.

Each part checks one kind of system and returns findings; nothing here changes anything. A
finding that fails names what to fix (the GRANT to run, the namespace that cannot be read).
"""

from __future__ import annotations

from remediator.config import Settings
from remediator.engine.preflight.databases import check_databases
from remediator.engine.preflight.finding import Finding
from remediator.engine.preflight.kubernetes import check_kubernetes
from remediator.engine.preflight.state import check_state

__all__ = ["Finding", "check_online"]


async def check_online(settings: Settings, *, allow_superuser: bool = False) -> list[Finding]:
    """Every finding: the state store, the databases, Kubernetes. `allow_superuser`: a
    playbook will terminate superusers' sessions, so the role must be a superuser too."""
    return [
        *await check_state(settings),
        *await check_databases(settings, allow_superuser=allow_superuser),
        *await check_kubernetes(settings),
    ]
