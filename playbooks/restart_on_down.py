"""ServiceDown, IngestionEngineDown, ApplicationDown: restart, then roll back, then humans.

The runbooks:

  * 000 "Emergency Restart": `kubectl rollout restart deployment/<app>`, then
    `kubectl rollout status`; "Quick Rollback": `kubectl rollout undo`;
  * 001 ApplicationDown: restart the application; "if restart fails, rollback";
  * 002 "Service Not Responding": `kubectl rollout restart deployment/technical-analysis`.

What the playbook does, for the Deployment named by the alert's `namespace` and `deployment`
labels (refused when a label is missing or invalid, or the Deployment does not exist):

  1. rollout restart: stamp the pod template with `kubectl.kubernetes.io/restartedAt`, so the
     Deployment replaces its pods under its own rolling-update limits. A paused Deployment is
     refused (the restart would never roll out; pausing is a human's decision);
  2. watch the rollout for `rollout_deadline_seconds`: complete (every replica updated and
     available) is success; ProgressDeadlineExceeded or the deadline is failure;
  3. on failure, roll back like `kubectl rollout undo`: restore the pod template of the newest
     earlier revision that runs different code (revisions that only differ by a restart are
     the same code), and watch that rollout too;
  4. if there is no such revision or the rollback does not roll out either, escalate with the
     state of both rollouts.

Recorded: the exact patches, the revisions and images, each rollout's final state. Shadow mode
records the restart patch, waits for nothing and names the rollback it would fall back to.
The waits happen inside the run: `dispatch.playbook_timeout_seconds` must exceed twice
`rollout_deadline_seconds`.

Verification: after 3 minutes the alert's own expression must no longer fire.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediator.playbook import Run, Target, Verify, playbook, targets
from remediator.playbook.access import uses
from remediator.playbook.kube import Kube


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rollout_deadline_seconds: float = Field(
        120.0,
        gt=0,
        description="How long the restart, and then the rollback, each get to roll out completely.",
    )
    rollback: bool = Field(
        True, description="Roll back to the previous revision when the restart does not roll out."
    )


@playbook(
    match='alertname=~"ServiceDown|IngestionEngineDown|ApplicationDown"',
    target=targets.deployment(),
    params=Params,
    priority=10,
    verify=Verify(bake=timedelta(minutes=3)),
    access=uses(
        Kube.workload, Kube.history, Kube.rollout_restart, Kube.wait_rollout, Kube.rollback
    ),
)
async def restart_on_down(
    *, target: Target, params: Params, kube: Kube, run: Run, **_: Any
) -> None:
    """Rollout-restart the Deployment; roll it back if the restart does not roll out."""
    deployment = await kube.workload(target)
    history = await kube.history(deployment)
    run.evidence("revisions", history.describe())
    stamp = await kube.rollout_restart(target)
    if stamp is None:  # shadow mode: nothing rolls out, so there is nothing to watch
        previous = history.describe()["previous"]
        run.evidence("if_the_restart_stalls", {"roll_back_to": previous} if previous else None)
        return
    run.evidence("restarted_at", stamp)
    restart = await kube.wait_rollout(target, params.rollout_deadline_seconds)
    run.evidence("restart", restart.describe())
    if restart.done:
        return
    if not params.rollback:
        run.escalate(f"the rollout restart of {target.key} did not roll out: {restart.reason}")
        return
    # The restart made a revision of its own; what runs different code is still the same.
    history = await kube.history(await kube.workload(target))
    if history.previous is None:
        run.escalate(
            f"the rollout restart of {target.key} did not roll out ({restart.reason}) and there "
            "is no earlier revision running different code to roll back to"
        )
        return
    await kube.rollback(target)
    rollback = await kube.wait_rollout(target, params.rollout_deadline_seconds)
    run.evidence("rollback", rollback.describe())
    if not rollback.done:
        run.escalate(
            f"neither the rollout restart of {target.key} ({restart.reason}) nor the rollback "
            f"to revision {history.describe()['previous']['revision']} ({rollback.reason}) "
            "rolled out"
        )
