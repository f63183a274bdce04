"""What follows a change to a Kubernetes object: the check that it stuck, and the restore of a
GitOps controller's reconciliation the `suspend` policy turned off.

Both are durable timers armed by the action gate (engine/runs/run.py, `ActionHooks`) from what the
Action itself carries (playbook/gitops.py), so they hold for every playbook using `kube`:

* `gitops_check`: a change that sets fields (`Action.fields`: replicas, an HPA floor, KEDA's
  paused count, the restart stamp, a rollback's images) is read again `check_after_seconds`
  later (per controller: two of its reconcile periods; `gitops.check_after_seconds` for objects
  no controller marks). Still set: recorded (`checked`). Otherwise it did not stick: "reverted
  by <owner>" when the fields are back to their old values, "changed since by <owner>" when
  they hold something else, the owner being the GitOps controller the object's marks name now
  ("unknown" without one). That is recorded (`undone`), reported in the episode's thread,
  escalated (with the change to make in Git when a controller owns it), and the incident held:
  acting again would only fight whatever undid it. A later change of the same object by this
  daemon within the episode (a scale-back, the restore of a suspension) supersedes the check.
* `gitops_resume`: the gate suspended a controller's reconciliation of an object (Flux's
  annotation, marked `remediator/suspended-by`). Declared before that call, twice: when the
  episode resolves, and at the deadline (`gitops.flux.suspend_seconds`). The first one due
  removes both annotations, if the mark is still this run's; the other finds nothing of its run
  and does nothing. Timers survive restarts, so a daemon that dies while an object is suspended
  restores it after it starts again. A restore that fails or is refused (a kill switch) is
  escalated once, with the `kubectl annotate` command that does it by hand, and tried again
  every `RETRY_SECONDS` until it succeeds or the mark is gone.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from remediator.clock import Clock
from remediator.engine.hooks import Escalator, Reporter
from remediator.engine.runs.pipeline import Pipeline
from remediator.logs import get_logger
from remediator.playbook import Action, PlaybookSpec, RunInfo, Target
from remediator.playbook.gitops import (
    SUSPEND,
    SUSPENDED_BY,
    FieldChange,
    GitOpsRules,
    Owner,
    git_change,
    value_at,
)
from remediator.playbook.kube import Kube
from remediator.store import Store
from remediator.store.records import ActionState, DecisionKind, EpisodeRecord, TimerRecord

CHECK = "gitops_check"  # timer kind: read a changed object again
RESUME = "gitops_resume"  # timer kind: restore a reconciliation the run suspended
RETRY_SECONDS = 300.0
_REAL = (ActionState.SUCCEEDED, ActionState.INTENT, ActionState.INTERRUPTED)


def _object_target(key: str) -> Target:
    kind, namespace, name = key.split("/", 2)
    return Target(kind, name, namespace)


class GitOpsFollowUps:
    """The engine's `ActionHooks`, and the handlers of the two timers they arm."""

    def __init__(
        self,
        store: Store,
        rules: GitOpsRules,
        pipeline: Pipeline,
        escalator: Escalator,
        reporter: Reporter,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._clock = clock
        self._rules = rules
        self._pipeline = pipeline
        self._escalator = escalator
        self._reporter = reporter
        self._log = get_logger(component="gitops")

    # -- armed by the action gate ----------------------------------------------------------

    async def before(self, run: RunInfo, action: Action) -> None:
        if action.kind != SUSPEND or action.owner is None:
            return
        annotations = ((action.body or {}).get("metadata") or {}).get("annotations") or {}
        payload = {
            "object": action.target.key,
            "owner": action.owner.describe(),
            "mark": annotations.get(SUSPENDED_BY),
            "target": run.target.key,
        }
        episode = await self._store.get_episode(run.episode_id)
        resolved = episode is not None and episode.status == "resolved"
        now = self._clock.now()
        deadline = now + timedelta(seconds=self._rules.settings.flux.suspend_seconds)
        for when, due in (
            ("resolved", now if resolved else None),
            ("deadline", deadline),
        ):
            await self._store.add_timer(
                RESUME,
                run.episode_id,
                due_at=due,
                run_id=run.run_id,
                playbook=run.playbook,
                payload={**payload, "when": when},
            )

    async def succeeded(self, run: RunInfo, action: Action, action_id: int) -> None:
        if not action.fields:
            return
        delay = self._rules.check_after(action.owner)
        if delay is None:
            return
        await self._store.add_timer(
            CHECK,
            run.episode_id,
            due_at=self._clock.now() + timedelta(seconds=delay),
            run_id=run.run_id,
            playbook=run.playbook,
            payload={
                "action_id": action_id,
                "object": action.target.key,
                "summary": action.summary,
                "fields": [f.describe() for f in action.fields],
                "owner": action.owner.describe() if action.owner else None,
                "after_seconds": delay,
                "target": run.target.key,
            },
        )

    # -- the timers ------------------------------------------------------------------------

    async def _context(
        self, timer: TimerRecord, step: str
    ) -> tuple[PlaybookSpec, EpisodeRecord, Kube, Any]:
        pipeline = self._pipeline
        spec = pipeline.registry.get(timer.playbook or "")
        episode = await self._store.get_episode(timer.episode_id)
        factory = pipeline.clients.get("kube")
        if spec is None or episode is None or timer.run_id is None or factory is None:
            raise LookupError(f"cannot {step}: playbook {timer.playbook!r}, episode or client gone")
        target = spec.target(episode.labels, pipeline.scope)
        run = pipeline.view_of(spec, target, episode.id, timer.run_id, step)
        kube = factory(run)
        assert isinstance(kube, Kube)
        return spec, episode, kube, run

    async def on_check(self, timer: TimerRecord) -> None:
        payload = timer.payload
        spec, episode, kube, run = await self._context(timer, "check")
        obj_key = str(payload["object"])
        # Any later change of ours counts, from any episode: another episode of the same
        # incident may have scaled on and then back to the baseline, which is not an undo.
        later = [
            a
            for a in await self._store.actions_on(obj_key, int(payload["action_id"]))
            if a.state in _REAL
        ]
        if later:
            await self._store.record_decision(
                episode.id,
                spec.name,
                DecisionKind.SKIPPED,
                f"no check that {payload['summary']!r} stuck: changed again by remediator "
                f"since ({later[-1].summary})",
                timer.run_id,
            )
            return
        fields = [FieldChange.from_json(f) for f in payload.get("fields") or []]
        async with self._pipeline.locks.hold(str(payload.get("target") or obj_key)):
            now = await kube.current(_object_target(obj_key))
        if now is not None and all(value_at(now, f.path) == f.after for f in fields):
            shown = ", ".join(f"{f.shown}: {_shown(f.after)}" for f in fields)
            await self._store.record_decision(
                episode.id,
                spec.name,
                DecisionKind.CHECKED,
                f"still in effect {_seconds(payload)} later: {payload['summary']} ({shown})",
                timer.run_id,
            )
            return
        await self._undone(spec, episode, run, payload, fields, now)

    async def _undone(
        self,
        spec: PlaybookSpec,
        episode: EpisodeRecord,
        run: Any,
        payload: dict[str, Any],
        fields: list[FieldChange],
        now: dict[str, Any] | None,
    ) -> None:
        obj_key = str(payload["object"])
        recorded = payload.get("owner")
        owner = self._rules.owner_of(now) if now is not None else None
        if owner is None and recorded:
            owner = Owner.from_json(recorded)
        who = str(owner) if owner is not None else "unknown"
        if now is None:
            what, how = f"{obj_key} was deleted since", "deleted"
        else:
            off = [(f, value_at(now, f.path)) for f in fields if value_at(now, f.path) != f.after]
            reverted = all(value == f.before for f, value in off)
            how = "reverted" if reverted else "changed since"
            what = ", ".join(
                f"{f.shown} is {_shown(value)} again (it set {_shown(f.after)})"
                if reverted
                else f"{f.shown} is {_shown(value)} now (it set {_shown(f.after)}, "
                f"was {_shown(f.before)})"
                for f, value in off
            )
        reason = (
            f"{payload['summary']} did not stick: {how} by {who} within {_seconds(payload)}: {what}"
        )
        if owner is not None and now is not None:
            reason += f"; to make it last, {git_change(fields, obj_key, owner)}"
        assert episode.id and run.run_id
        await self._store.record_decision(
            episode.id, spec.name, DecisionKind.UNDONE, reason, run.run_id
        )
        details = {
            "kind": "undone",
            "playbook": spec.name,
            "target": run.target.key,
            "object": obj_key,
            "how": how,
            "by": who,
            "reason": reason,
            "run_id": run.run_id,
        }
        await self._reporter.report(episode.id, "undone", details)
        await self._escalator.escalate(episode.id, run.run_id, reason, details)
        await self._pipeline.incidents.hold(run.run_id, reason)

    async def on_resume(self, timer: TimerRecord) -> None:
        payload = timer.payload
        spec, episode, kube, run = await self._context(timer, "resume")
        owner = Owner.from_json(payload["owner"])
        obj = _object_target(str(payload["object"]))
        mark = str(payload.get("mark"))
        try:
            async with self._pipeline.locks.hold(str(payload.get("target") or obj.key)):
                resumed = await kube.resume(obj, owner, mark)
        except Exception as exc:  # a refusal (kill switch) or a failure: never left suspended
            await self._retry(timer, spec, episode, owner, obj, f"{type(exc).__name__}: {exc}")
            return
        finally:
            await run.progress.finish()
        if not resumed:
            return  # restored already (the other timer, or a later run), or not ours now
        when = (
            "after the alert resolved" if payload.get("when") == "resolved" else "at its deadline"
        )
        reason = f"restored {owner}'s reconciliation of {obj.key} {when}"
        await self._store.record_decision(
            episode.id, spec.name, DecisionKind.RESUMED, reason, timer.run_id
        )
        await self._reporter.report(
            episode.id,
            "resumed",
            {
                "kind": "resumed",
                "playbook": spec.name,
                "target": run.target.key,
                "mode": "auto",
                "reason": reason,
                "run_id": timer.run_id,
            },
        )

    async def _retry(
        self,
        timer: TimerRecord,
        spec: PlaybookSpec,
        episode: EpisodeRecord,
        owner: Owner,
        obj: Target,
        error: str,
    ) -> None:
        payload = dict(timer.payload)
        attempts = int(payload.get("attempts", 0)) + 1
        await self._store.add_timer(
            RESUME,
            episode.id,
            due_at=self._clock.now() + timedelta(seconds=RETRY_SECONDS),
            run_id=timer.run_id,
            playbook=spec.name,
            payload={**payload, "attempts": attempts},
        )
        self._log.warning("restore failed", object=obj.key, error=error, attempts=attempts)
        if attempts > 1:
            return  # humans were told at the first failure; it keeps trying
        kind = obj.kind.lower()
        command = (
            f"kubectl -n {obj.namespace} annotate {kind}/{obj.name} {owner.switch}- {SUSPENDED_BY}-"
        )
        reason = (
            f"could not restore {owner}'s reconciliation of {obj.key} ({error}); it is tried "
            f"again every {RETRY_SECONDS:g} s, or run: {command}"
        )
        await self._store.record_decision(
            episode.id, spec.name, DecisionKind.FAILED, reason, timer.run_id
        )
        await self._escalator.escalate(
            episode.id,
            timer.run_id,
            reason,
            {"kind": "resume_failed", "playbook": spec.name, "object": obj.key},
        )


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


def _seconds(payload: dict[str, Any]) -> str:
    return f"{float(payload.get('after_seconds', 0)):g} s"


__all__ = ["CHECK", "RESUME", "GitOpsFollowUps"]
