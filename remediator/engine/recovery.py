"""Start-up reconciliation: intents without an outcome are escalated, never re-run.

A daemon killed between writing an intent and writing its outcome cannot know whether the
change happened. Re-running it could double a scale-up or evict a second pod, so the action is
marked interrupted and a human is asked to look at the target's current state.
"""

from __future__ import annotations

from remediator.engine.hooks import Escalator
from remediator.logs import get_logger
from remediator.store import Store


async def reconcile_interrupted(store: Store, escalator: Escalator) -> int:
    log = get_logger(component="recovery")
    actions = await store.interrupt_unfinished()
    for action in actions:
        log.warning(
            "interrupted action",
            episode=action.episode_id,
            action=action.summary,
            run=action.run_id,
        )
        await escalator.escalate(
            action.episode_id,
            action.run_id,
            f"interrupted by a restart, outcome unknown: {action.summary}",
            {
                "kind": "interrupted",
                "playbook": action.playbook,
                "target": action.target_key,
                "call": {"verb": action.verb, "resource": action.resource, "body": action.body},
            },
        )
    return len(actions)
