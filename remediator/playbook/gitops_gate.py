"""The GitOps gate of `Kube`'s changes: who manages the object about to change, and what the
policy needs done before the change.

Each change method of `Kube` knows its kind of change (scale, rollback, restart) and hands the
object as it read it. The gate reads the owner from the object's own marks
(`remediator.playbook.gitops`), records it as evidence, and returns it for the `Action`, where
the guard decides (engine/guards/gitops.py): `escalate` refuses the change and names the change
to make in Git, `act` lets it pass, `suspend` lets it pass only once the controller leaves the
object alone.

Under `suspend` the gate turns that switch first, as a change of its own through `run.act`
(guarded, recorded, only "would" in shadow mode): Flux's annotation on the object, and
`remediator/suspended-by` naming the episode, the run and the deadline. The engine declares
the restore before that call (engine/runs/gitops.py): when the alert resolves, or at the deadline,
whichever comes first, durably. An object whose switch someone else turned is left as it is
(it is not reconciled, and it is theirs to restore); one this run suspended already is not
suspended twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from remediator.playbook.context import Run
from remediator.playbook.gitops import SUSPEND, GitOpsRules, Owner, suspended
from remediator.playbook.targets import Target

JsonObj = dict[str, object]
Suspend = Callable[[Owner, str], Awaitable[object]]


class GitOpsGate:
    """One run's gate (a `Kube` view holds one)."""

    def __init__(self, rules: GitOpsRules | None, run: Run) -> None:
        self._rules = rules
        self._run = run
        self._seen: dict[str, str] = {}
        self._mine: dict[str, Owner] = {}  # objects this view suspended

    @property
    def rules(self) -> GitOpsRules | None:
        return self._rules

    async def admit(
        self, obj: JsonObj, target: Target, kind: str, suspend: Suspend
    ) -> Owner | None:
        """The owner to put on the Action (None: no GitOps controller marks the object)."""
        if self._rules is None:
            return None
        owner = self._rules.owner_of(obj)
        if owner is None:
            return None
        policy = self._rules.policy(self._run.playbook, kind, owner)
        self._note(target, owner, kind, policy)
        if policy != SUSPEND or owner.suspended_elsewhere:
            return owner
        if target.key in self._mine:
            return self._mine[target.key]
        if owner.suspended_by is not None and owner.suspended_by.startswith(self._run_mark()):
            return owner  # this run suspended it before (an earlier step of it)
        mark = self._mark()
        await suspend(owner, mark)
        held = suspended(owner, mark)
        self._mine[target.key] = held
        return held

    def _note(self, target: Target, owner: Owner, kind: str, policy: str) -> None:
        text = f"{owner} ({owner.mark}); {kind}: {policy}"
        if owner.suspended_elsewhere:
            text += f"; its reconciliation is off ({owner.switch}: disabled, not by remediator)"
        self._seen[target.key] = text
        self._run.evidence("gitops", dict(self._seen))

    def _run_mark(self) -> str:
        return f"{self._run.episode_id} run {self._run.run_id} "

    def _mark(self) -> str:
        assert self._rules is not None
        seconds = self._rules.settings.flux.suspend_seconds
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        return f"{self._run_mark()}until {until.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def suspend_summary(owner: Owner, obj: str, mark: str) -> str:
    until = mark.rpartition("until ")[2]
    return f"suspend {owner}'s reconciliation of {obj} until {until} at the latest"


__all__ = ["GitOpsGate", "suspend_summary"]
