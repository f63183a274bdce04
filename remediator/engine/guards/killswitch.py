"""Kill switches: an operator stops remediation everywhere, for one playbook, or for one target.

Read from the store on every check (not cached), so a pause takes effect for the very next
action, in every replica, and survives restarts. An expired switch simply stops matching.
"""

from __future__ import annotations

from remediator.clock import Clock
from remediator.playbook import Action, ActionRefused, RunInfo
from remediator.store import Store
from remediator.store.records import KillSwitchRecord, Scope

NAME = "kill_switch"


def matches(switch: KillSwitchRecord, run: RunInfo, action: Action) -> bool:
    if switch.scope == Scope.GLOBAL:
        return True
    if switch.scope == Scope.PLAYBOOK:
        return switch.key == run.playbook
    # A target switch holds the workload and anything the run touches inside it.
    return switch.key in (run.target.key, action.target.key)


class KillSwitchGuard:
    name = NAME

    def __init__(self, store: Store, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def check(self, run: RunInfo, action: Action) -> None:
        for switch in await self._store.kill_switches(at=self._clock.now()):
            if matches(switch, run, action):
                scope = (
                    switch.scope if switch.scope == Scope.GLOBAL else f"{switch.scope} {switch.key}"
                )
                until = f" until {switch.expires_at.isoformat()}" if switch.expires_at else ""
                raise ActionRefused(
                    NAME, f"paused ({scope}) by {switch.who}{until}: {switch.reason}"
                )
