"""The clients a playbook can ask for by keyword, built from the settings.

Each entry opens a network client once (in `open`) and hands every run a run-bound view of it,
whose mutating calls go through `run.act`. Playbooks name what they need as keyword arguments
(`kube=`, `postgres=`, ...); nothing is opened that the configuration does not mention.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from remediator.config import Settings
from remediator.playbook import ClientFactory, ResolveScope


@dataclass
class ClientSet:
    factories: dict[str, ClientFactory] = field(default_factory=dict)
    scope: ResolveScope = field(default_factory=ResolveScope)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def add(
        self, name: str, factory: ClientFactory, close: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.factories[name] = factory
        if close is not None:
            self._closers.append(close)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()


async def build_clients(settings: Settings) -> ClientSet:
    """Open the clients the configuration asks for."""
    return ClientSet()
