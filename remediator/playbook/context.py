"""What a running playbook receives: the action gate, evidence and escalation.

Playbooks never call a mutating API directly. They describe each change as an `Action` and pass
it, with the coroutine that performs it, to `Run.act`. The engine behind `act` checks the guards
immediately before the call, honours the mode (shadow records the exact call and skips it), and
writes the intent before and the outcome after, so that a crash in between is visible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from remediator.playbook.budget import Budget
from remediator.playbook.gitops import FieldChange, Owner
from remediator.playbook.targets import Target

T = TypeVar("T")
JSON = Any  # what json.dumps accepts; kept loose on purpose for playbook authors


@dataclass(frozen=True)
class Action:
    """One change to the world, described exactly enough to record, guard and report.

    `change` carries the facts guards check (e.g. {"replicas": [3, 5]} or {"sessions": 4}); `body`
    is the exact request (patch body, SQL) that is recorded and, in shadow mode, reported.

    For a change to a Kubernetes object (`remediator.playbook.gitops`): `kind` is the kind of
    change a GitOps policy covers (scale, rollback, restart; suspend and resume for the switch
    itself), `owner` the GitOps controller managing the object touched, from its own marks,
    and `fields` what the change sets, read again later to check that it stuck.
    """

    verb: str  # patch, create, delete, evict, terminate, ...
    resource: str  # deployments/scale, pods/eviction, pg_stat_activity, ...
    target: Target
    summary: str  # human sentence: "scale shop/api 3 -> 5"
    body: JSON = None
    change: Mapping[str, JSON] = field(default_factory=dict)
    kind: str | None = None
    owner: Owner | None = None
    fields: tuple[FieldChange, ...] = ()


class ActionRefused(Exception):
    """A guard refused the action; the playbook should stop (the engine escalates)."""

    def __init__(self, guard: str, reason: str) -> None:
        super().__init__(f"{guard}: {reason}")
        self.guard = guard
        self.reason = reason


class RunInfo(Protocol):
    """Which run this is: what guards, approvals and verification need to know of it."""

    @property
    def run_id(self) -> int: ...
    @property
    def episode_id(self) -> str: ...
    @property
    def playbook(self) -> str: ...
    @property
    def target(self) -> Target: ...
    @property
    def dry_run(self) -> bool:
        """True in shadow mode: `act` records the call and returns None without running it."""
        ...

    @property
    def budget(self) -> Budget:
        """What the playbook declared its procedure needs (`@playbook(budget=...)`)."""
        ...


class Run(RunInfo, Protocol):
    """One playbook run for one episode and one target."""

    async def act(self, action: Action, call: Callable[[], Awaitable[T]]) -> T | None:
        """Guard, record intent, run `call` (unless dry run), record outcome; raises
        ActionRefused when a guard says no."""
        ...

    async def allowance(self, key: str) -> int | None:
        """How many more of a counted change (`changes.PODS`, `changes.SESSIONS`) the guards
        would let this run take now: the ceiling (and the playbook's budget) minus what was
        already taken; None when nothing bounds it. A count cap limits the action: take at
        most this many (the oldest first) and `note` what was left."""
        ...

    def note(self, text: str) -> None:
        """Something the run's decision and report must say although the run did not fail,
        e.g. what a cap left undone ("2 of 4 sessions left: ...")."""
        ...

    async def record_call(self, verb: str, resource: str, obj: str, body: JSON = None) -> None:
        """Record a non-mutating call (a read), so the record shows everything the run did."""
        ...

    def evidence(self, key: str, value: JSON) -> None:
        """Before/after facts for the record and the report (e.g. "replicas_before": 3).
        Kept durably before each real action; `remaining` (what the run still has to do) is
        reported as not done when a restart cuts the run."""
        ...

    def escalate(self, reason: str) -> None:
        """Ask for humans at the end of the run, even if the run itself succeeded."""
        ...

    async def follow_up(self, delay_seconds: float, data: JSON | BaseModel) -> None:
        """In `delay_seconds`, if the episode's alert still fires, call the playbook's
        `follow_up` handler with `data` (durable: survives a restart): the runbook's next step
        when this one did not help. A resolved alert cancels it. `data` is best a pydantic
        model that the handler names as its `data` annotation: it comes back as that model."""
        ...

    async def on_resolved(self, delay_seconds: float, data: JSON | BaseModel) -> None:
        """When the episode's alert resolves, wait `delay_seconds`, then call the playbook's
        `revert` handler with `data` (durable: survives a restart). E.g. scale back down.

        Call it before the change it undoes: it counts only once the run is known to have
        changed something (the run ends acted, or after a crash the change is found applied),
        and is dropped otherwise. Several episodes of one incident get one revert, the last,
        called with `data` of the newest run and `baseline=` the first run's data. As with
        `follow_up`, a pydantic model named in the handler's annotations comes back as that
        model."""
        ...


@runtime_checkable
class ReadsBack(Protocol):
    """A run-bound client that can tell whether a recorded change is in effect now, so
    start-up reconciliation can say what an interrupted action did (never by re-running it)."""

    async def applied(self, verb: str, resource: str, body: JSON) -> bool | None:
        """True: in effect; False: not; None: this client cannot tell for this change."""
        ...


# A client factory builds a run-bound client (e.g. one whose mutations go through run.act).
ClientFactory = Callable[[Run], object]
