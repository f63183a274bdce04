"""GitOps: a change to an object a GitOps controller manages is made only as its policy says.

Each change of the `kube` client carries its kind (scale, rollback, restart) and the controller
the object's own marks name (playbook/gitops_gate.py). The policy for that playbook, controller
and kind (`gitops.<argocd|flux>.policy`, `playbooks.<name>.gitops`) decides here, immediately
before the change, like every guard:

  * `escalate` (default for scale and rollback): refused, so nothing changes; the reason names
    the change a human should make in Git instead;
  * `act` (default for the rollout restart, which the controllers leave alone): passes; the
    check that the change stuck (engine/runs/gitops.py) tells if the controller undid it;
  * `suspend` (Flux only): passes once the controller leaves the object alone (the gate turned
    Flux's switch first, or it was off already); refused otherwise.

An object no controller marks, and a change of another kind (an eviction, the switch itself),
pass untouched. A refusal here is configuration, not trouble: it does not count towards the
storm breaker's refusal burst.
"""

from __future__ import annotations

from remediator.playbook import Action, ActionRefused, RunInfo
from remediator.playbook.gitops import ACT, SUSPEND, GitOpsRules, git_change

NAME = "gitops"


class GitOpsGuard:
    name = NAME

    def __init__(self, rules: GitOpsRules) -> None:
        self._rules = rules

    async def check(self, run: RunInfo, action: Action) -> None:
        owner = action.owner
        policy = self._rules.policy(run.playbook, action.kind, owner)
        if policy == ACT or owner is None:
            return
        obj = action.target.key
        if policy == SUSPEND:
            if owner.suspended:
                return
            raise ActionRefused(
                NAME,
                f"{owner} manages {obj} and its reconciliation of it is not suspended "
                f"({action.kind} policy: suspend); nothing was changed",
            )
        raise ActionRefused(
            NAME,
            f"{owner} manages {obj} ({owner.mark}) and would undo this {action.kind} "
            f"({action.kind} policy: {policy}), so nothing was changed; to make the change "
            f"last, {git_change(action.fields, obj, owner)}",
        )


__all__ = ["NAME", "GitOpsGuard"]
