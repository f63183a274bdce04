"""Start-up reconciliation: every run a restart cut short is reported and escalated, never
re-run.

A daemon killed during a run cannot know how far the run got: between an intent and its
outcome the change may or may not have happened, and a run waiting on a rollout after its
change (a rolling restart between two pods) has done part of its work. Re-running could double
a scale-up or evict a second pod, so the run is marked interrupted and, for each one:

  * what it did (actions that succeeded), what it may have done (intents without an outcome:
    read back through the client when it can tell, e.g. a patch of a replica count) and what it
    did not do (the `remaining` evidence it recorded before its last action) are recorded,
    reported in the episode's thread and escalated;
  * when it changed something, what would have followed a finished run follows now: its
    declared revert (scale back after the alert resolves) is armed, its verification scheduled
    and its incident opened; when it did not, its revert is dropped.

One escalation per restart: a restart that finds several cut runs pages once for all of them.

With replicas sharing the store (engine/runs/replicas.py), a replica that dies or freezes is
fenced by another, which reconciles what it held the same way, restricted to its claims
(`owner`): the dead replica's runs are what the restart cut.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from remediator.engine.runs.pipeline import Pipeline, episode_alert
from remediator.engine.runs.run import REVERT, EngineRun
from remediator.logs import get_logger
from remediator.playbook import PlaybookSpec, ReadsBack, Target, TargetError
from remediator.store.records import (
    ActionRecord,
    ActionState,
    DecisionKind,
    EpisodeRecord,
    RunRecord,
    RunState,
)

APPLIED, NOT_APPLIED, UNKNOWN = "found applied", "found not applied", "outcome unknown"


@dataclass
class Finding:
    """One run (or one later step of a finished run) a restart cut short."""

    episode_id: str
    run_id: int
    playbook: str
    target: str
    text: str
    changed: bool
    details: dict[str, Any] = field(default_factory=dict)


async def reconcile_interrupted(
    pipeline: Pipeline, owner: str | None = None, cause: str | None = None
) -> int:
    """Reconcile what the last life of the daemon left unfinished (`owner`: what that fenced
    replica left; None: everything, the one SQLite process at its start); returns how many
    runs."""
    store = pipeline.store
    if cause is None:
        cause = "a restart" if owner is None else f"the loss of replica {owner}"
    await store.requeue_running_timers(owner)
    runs = await store.unfinished_runs(owner)
    open_intents: dict[int, list[ActionRecord]] = defaultdict(list)
    for action in await store.interrupt_unfinished(owner):
        open_intents[action.run_id].append(action)
    findings = [await _run(pipeline, run, cause) for run in runs]
    for run_id, actions in open_intents.items():
        if all(f.run_id != run_id for f in findings):  # a revert or follow-up step was cut
            findings.append(await _step(pipeline, actions, cause))
    await _escalate(pipeline, findings, cause, owner)
    return len(findings)


async def _run(pipeline: Pipeline, run: RunRecord, cause: str) -> Finding:
    store, log = pipeline.store, get_logger(component="recovery")
    episode = await store.get_episode(run.episode_id)
    spec = pipeline.registry.get(run.playbook)
    mine = [a for a in await store.actions_for(run.episode_id) if a.run_id == run.id]
    view = _view(pipeline, spec, episode, run)
    checked = [(a, await _read_back(pipeline, view, a)) for a in mine if a.state == "interrupted"]
    done = [a.summary for a in mine if a.state == ActionState.SUCCEEDED]
    failed = [f"{a.summary} ({a.error})" for a in mine if a.state == ActionState.FAILED]
    changed = bool(done) or any(found == APPLIED for _, found in checked)
    parts = [f"done: {'; '.join(done) or 'nothing'}"]
    if failed:
        parts.append(f"failed: {'; '.join(failed)}")
    parts += [f"{found}: {a.summary}" for a, found in checked]
    remaining = run.evidence.get("remaining")
    parts.append(
        f"not done: {_listed(remaining)}"
        if remaining is not None
        else "not done: whatever the run had left to do (it is not resumed)"
    )
    armed = await store.release_timers(run.id, REVERT, arm=changed)
    following = []
    if changed:
        if armed:
            following.append("its revert is armed")
        if view is not None and spec is not None and episode is not None:
            await pipeline.incidents.acted(run.playbook, run.target_key, episode.id, run.id)
            if spec.verify is not None:
                await pipeline.verifier.schedule(
                    spec,
                    view,
                    episode_alert(episode, "firing" if episode.status == "firing" else "resolved"),
                )
                following.append("its verification is scheduled")
    if following:
        parts.append(", ".join(following))
    text = f"{run.playbook} on {run.target_key} (run {run.id}) was cut by {cause}: " + "; ".join(
        parts
    )
    await store.finish_run(
        run.id, RunState.INTERRUPTED, error=text, evidence=run.evidence, escalation=text
    )
    await store.record_decision(
        run.episode_id, run.playbook, DecisionKind.INTERRUPTED, text, run.id
    )
    pipeline.metrics.runs.labels(playbook=run.playbook, outcome="interrupted").inc()
    log.warning("interrupted run", episode=run.episode_id, run=run.id, summary=text)
    details = {
        "kind": "interrupted",
        "playbook": run.playbook,
        "target": run.target_key,
        "mode": run.mode,
        "evidence": run.evidence,
    }
    await pipeline.reporter.report(run.episode_id, "run_interrupted", {**details, "run_id": run.id})
    return Finding(run.episode_id, run.id, run.playbook, run.target_key, text, changed, details)


async def _step(pipeline: Pipeline, actions: list[ActionRecord], cause: str) -> Finding:
    """An intent of a step after the run had ended (a revert, a follow-up): it is not re-run."""
    first = actions[0]
    episode = await pipeline.store.get_episode(first.episode_id)
    spec = pipeline.registry.get(first.playbook)
    view = _view(pipeline, spec, episode, None, first)
    checked = [(a, await _read_back(pipeline, view, a)) for a in actions]
    text = "; ".join(f"{found}: {a.summary}" for a, found in checked)
    return Finding(
        first.episode_id,
        first.run_id,
        first.playbook,
        first.target_key,
        f"a later step of {first.playbook} on {first.target_key} (run {first.run_id}) was "
        f"cut by {cause}: {text}",
        any(found == APPLIED for _, found in checked),
        {
            "kind": "interrupted",
            "playbook": first.playbook,
            "target": first.target_key,
            "calls": [{"verb": a.verb, "resource": a.resource, "body": a.body} for a, _ in checked],
        },
    )


async def _escalate(
    pipeline: Pipeline, findings: list[Finding], cause: str, owner: str | None
) -> None:
    if not findings:
        return
    if len(findings) == 1:
        [one] = findings
        await pipeline.escalator.escalate(
            one.episode_id, one.run_id, f"interrupted by {cause}: {one.text}", one.details
        )
        return
    # One page for the restart (or the lost replica), not one per run; each episode's thread
    # has its own report.
    key = f"restart-{pipeline.clock.now().strftime('%Y%m%dT%H%M%S.%fZ')}"
    if owner is not None:
        key = f"replica-{owner}"
    await pipeline.escalator.escalate(
        key,
        None,
        f"interrupted by {cause}: {len(findings)} runs did not finish: "
        + " | ".join(f.text for f in findings),
        {
            "kind": "interrupted",
            "runs": [
                {"episode": f.episode_id, "run_id": f.run_id, "summary": f.text} for f in findings
            ],
        },
    )


def _view(
    pipeline: Pipeline,
    spec: PlaybookSpec | None,
    episode: EpisodeRecord | None,
    run: RunRecord | None,
    action: ActionRecord | None = None,
) -> EngineRun | None:
    """A run-bound view of the interrupted run, to read its target through its clients (its
    reads are recorded on the run). None when the playbook or the target is gone."""
    if spec is None or episode is None:
        return None
    try:
        target: Target = spec.target(episode.labels, pipeline.scope)
    except TargetError:
        return None
    run_id = run.id if run is not None else action.run_id if action is not None else 0
    return pipeline.view_of(spec, target, episode.id, run_id)


async def _read_back(pipeline: Pipeline, view: EngineRun | None, action: ActionRecord) -> str:
    if view is None:
        return UNKNOWN
    for factory in pipeline.clients.values():
        client = factory(view)
        if not isinstance(client, ReadsBack):
            continue
        try:
            found = await client.applied(action.verb, action.resource, action.body)
        except Exception as exc:  # cannot read now: say so, never guess
            get_logger(component="recovery").warning("cannot read back", error=str(exc))
            return f"{UNKNOWN} (reading it back failed: {type(exc).__name__})"
        if found is not None:
            return APPLIED if found else NOT_APPLIED
    return UNKNOWN


def _listed(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "nothing"
    return str(value)
