"""HighErrorRate: roll the Deployment back when the spike follows a recent rollout.

The runbooks (000 "Rollback Procedures", 001 High Error Rate, 002 High Error Rate): when
errors spike after a deploy, `kubectl rollout undo deployment/<app>` and watch
`kubectl rollout status`. Errors without a recent deploy have another cause (a dependency,
load, data), which a rollback would not fix: that is for humans.

What the playbook does, for the Deployment named by the alert's `namespace` and `deployment`
labels (refused when a label is missing or invalid, or the Deployment does not exist):

  1. read its revisions: the current one, when its code was first rolled out (a rollout
     restart is not a new rollout: same code), and the newest earlier revision running
     different code;
  2. if that rollout is older than `rollout_window_seconds`, or there is no earlier revision:
     change nothing, report the revisions, escalate;
  3. otherwise roll back like `kubectl rollout undo` (a JSON patch restoring that revision's
     pod template; refused for a paused Deployment) and watch the rollout for
     `rollout_deadline_seconds`; escalate if it does not complete.

The rollout time is the creation of the current revision's ReplicaSet; a Deployment rolled
back to an old ReplicaSet by hand therefore looks old, and is not rolled back again.

Recorded: the revisions with their images and rollout time, the exact patch, the rollout's
final state. Shadow mode records the patch and changes nothing. Verification: after 5 minutes
the alert's own expression must no longer fire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import Run, Target, Verify, playbook, targets
from remediator.playbook.access import uses
from remediator.playbook.kube import Kube


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rollout_window_seconds: float = Field(
        3600.0,
        gt=0,
        description="Roll back only when the running code was rolled out at most this long "
        "before the alert.",
    )
    rollout_deadline_seconds: float = Field(
        120.0, gt=0, description="How long the rollback gets to roll out completely."
    )


@playbook(
    match='alertname="HighErrorRate"',
    target=targets.deployment(),
    params=Params,
    priority=10,
    verify=Verify(bake=timedelta(minutes=5)),
    access=uses(Kube.workload, Kube.history, Kube.rollback, Kube.wait_rollout),
)
async def rollback_on_error_spike(
    *, target: Target, params: Params, kube: Kube, run: Run, **_: Any
) -> None:
    """Roll back a Deployment whose errors spiked after a recent rollout; else escalate."""
    history = await kube.history(await kube.workload(target))
    run.evidence("revisions", history.describe())
    deployed = history.deployed_at
    age = (datetime.now(UTC) - deployed).total_seconds() if deployed else None
    if age is None or age > params.rollout_window_seconds:
        when = f"{age:.0f} s ago" if age is not None else "at an unknown time"
        run.escalate(
            f"{target.key} was last rolled out {when}, not within "
            f"{params.rollout_window_seconds:g} s: the errors do not follow a deploy, so "
            "nothing was rolled back"
        )
        return
    if history.previous is None:
        run.escalate(f"{target.key} has no earlier revision running different code")
        return
    await kube.rollback(target)
    if run.dry_run:
        return
    rollout = await kube.wait_rollout(target, params.rollout_deadline_seconds)
    run.evidence("rollback", rollout.describe())
    if not rollout.done:
        run.escalate(f"the rollback of {target.key} did not roll out: {rollout.reason}")
