"""What a playbook's procedure needs to touch, declared with the playbook, under the guards'
ceilings.

A count cap limits an action, it does not refuse the run: the guards' settings
(`guards.blast_radius.max_pods_per_episode`, `max_sessions_per_run`) are ceilings, and within
them a playbook takes what its procedure needs and no more:

* pods: `@playbook(budget=Budget(pods=...))`, how many pods of its target workload one episode
  may delete or evict. The default is one (restart one pod, then escalate if that did not
  help); a rolling restart declares `PER_REPLICA`, one per replica of the workload (each
  eviction says how many replicas it has: `changes.WORKLOAD_REPLICAS`).
* sessions, and any other count a parameter sets: the parameter is marked with the setting
  that bounds it (`Annotated[int, Field(10), Ceiling("guards.blast_radius.max_sessions_per_run")]`);
  the playbook asks the guards how much is left (`run.allowance(changes.SESSIONS)`), takes the
  oldest that many and says what it left (`run.note`). `remediator check` warns when a
  parameter exceeds its ceiling.

`remediator explain` and `GET /admin/playbooks` show each playbook's budget with its ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

PER_REPLICA: Final = "per_replica"
"""`Budget(pods=PER_REPLICA)`: one pod per replica of the target workload, per episode."""


@dataclass(frozen=True)
class Budget:
    """The pods of its target workload one episode of the playbook may delete or evict,
    bounded by `guards.blast_radius.max_pods_per_episode` whatever is declared here."""

    pods: int | Literal["per_replica"] = 1

    def __post_init__(self) -> None:
        valid = self.pods == PER_REPLICA or (
            isinstance(self.pods, int) and not isinstance(self.pods, bool) and self.pods >= 1
        )
        if not valid:
            raise ValueError(f"Budget(pods={self.pods!r}): a count >= 1 or PER_REPLICA")

    def describe_pods(self) -> str:
        if self.pods == PER_REPLICA:
            return "one per replica of the workload"
        return f"{self.pods} per episode"


@dataclass(frozen=True)
class Ceiling:
    """Marks a playbook parameter as bounded by a guard setting (a dotted key of the
    configuration): the guard is the ceiling, whatever the parameter says, and `check` warns
    when the parameter is set above it."""

    setting: str
