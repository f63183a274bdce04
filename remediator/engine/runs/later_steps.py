"""A run's later steps, due from durable timers: its revert after the alert resolved
(`run.on_resolved`) and its follow-up while the alert still fires (`run.follow_up`).

Both run through the same executor as the run itself (lock, timeout, one decision, report,
escalation); what they decide is here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remediator.config import Mode
from remediator.engine.runs.executor import Ending, Said
from remediator.engine.runs.pipeline import Pipeline, episode_alert
from remediator.engine.runs.run import REVERT, EngineRun
from remediator.logs import get_logger
from remediator.playbook import PlaybookSpec, Target, TargetError, handler_data
from remediator.store.records import (
    DecisionKind,
    EpisodeRecord,
    TimerRecord,
    VerificationResult,
)


class LaterSteps:
    def __init__(self, pipeline: Pipeline) -> None:
        self._p = pipeline
        self.log = get_logger(component="pipeline")

    # -- revert ----------------------------------------------------------------------------
    async def revert(self, timer: TimerRecord) -> None:
        """A `run.on_resolved` timer came due: call the playbook's revert handler once."""
        p = self._p
        spec = p.registry.get(timer.playbook or "")
        episode = await p.store.get_episode(timer.episode_id)
        if spec is None or spec.revert is None or episode is None or timer.run_id is None:
            raise LookupError(f"cannot revert: playbook {timer.playbook!r} or episode is gone")
        revert = spec.revert
        target = spec.target(episode.labels, p.scope)
        data, baseline = timer.payload.get("data"), None
        incident = await p.store.incident_of_run(timer.run_id)
        if incident is not None:
            # One revert per incident: the last one due restores the incident's baseline.
            reverts = await p.store.incident_timers(incident.id, REVERT)
            later = [t for t in reverts if t.id != timer.id and t.state in ("waiting", "held")]
            if later:
                await p.store.record_decision(
                    episode.id,
                    spec.name,
                    DecisionKind.SKIPPED,
                    f"revert left to episode {later[-1].episode_id} of the same incident "
                    f"({incident.id}), whose revert is still to come",
                    timer.run_id,
                )
                return
            live = sorted(
                (t for t in reverts if t.state != "cancelled"), key=lambda t: t.run_id or 0
            )
            data, baseline = live[-1].payload.get("data"), live[0].payload.get("data")
        again = await self._firing_again(spec, target, episode.id)
        if again is not None:
            await self._defer_revert(timer, spec, target, episode.id, again)
            return
        run, kwargs, log = self._step(timer, spec, target, episode, "revert")

        async def call() -> None:
            await revert(
                **kwargs,
                data=handler_data.load(revert, data),
                baseline=handler_data.load(revert, baseline, "baseline"),
            )

        ending = await p.executor.execute(run, call, log, what="revert")
        said, outcome = self._reverted(spec, ending)
        await p.executor.say(episode.id, spec.name, timer.run_id, said)
        if ending.exception is not None:
            raise ending.exception  # the timer records the error
        await p.incidents.close_after_revert(timer.run_id, outcome)

    @staticmethod
    def _reverted(spec: PlaybookSpec, ending: Ending) -> tuple[Said, str]:
        """Say what the revert really did: undone (how), left for humans (why), or nothing;
        and, for the incident, in a few words."""
        run = ending.run
        failed = {"kind": "revert_failed", "playbook": spec.name}
        if ending.exception is not None:
            reason = f"revert failed: {_failure(ending)}"
            return Said(DecisionKind.FAILED, reason, escalation=reason, details=failed), reason
        if run.escalations:
            reason = "not reverted: " + "; ".join(run.escalations)
            said = Said(
                DecisionKind.FAILED,
                reason,
                escalation=reason,
                details={**failed, "target": run.target.key},
            )
            return said, reason
        if run.acted or run.would:
            done = "; ".join(run.done) or "dry run"
            said = Said(
                DecisionKind.REVERTED,
                f"reverted after the alert resolved: {done}",
                report="reverted",
                details={
                    "playbook": spec.name,
                    "target": run.target.key,
                    "evidence": run.evidence_data,
                },
            )
            return said, f"reverted: {done}"
        return Said(DecisionKind.NOOP, "revert: nothing to revert"), "nothing to revert"

    async def _firing_again(
        self, spec: PlaybookSpec, target: Target, episode_id: str
    ) -> str | None:
        """Another firing episode of an alert this playbook handles for the same target: undoing
        the change now (e.g. scaling down) would act against a firing alert."""
        p = self._p
        for other in await p.store.list_episodes(status="firing", namespace=target.namespace):
            if other.id == episode_id or not spec.matches(other.labels):
                continue
            try:
                if spec.target(other.labels, p.scope).key == target.key:
                    return other.id
            except TargetError:
                continue
        return None

    async def _defer_revert(
        self, timer: TimerRecord, spec: PlaybookSpec, target: Target, episode_id: str, again: str
    ) -> None:
        """Ask again after the same cool-down (at least a second, so it never spins): once the
        other episode resolved, the handler decides from the state it then finds."""
        wait = max(float(timer.payload.get("delay_seconds", 0.0)), 1.0)
        await self._p.store.add_timer(
            REVERT,
            episode_id,
            due_at=self._p.clock.now() + timedelta(seconds=wait),
            run_id=timer.run_id,
            playbook=spec.name,
            payload=dict(timer.payload),
        )
        await self._p.store.record_decision(
            episode_id,
            spec.name,
            DecisionKind.SKIPPED,
            f"revert deferred: the alert fires again for {target.key} (episode {again}); "
            f"asking again in {wait:g} s",
            timer.run_id,
        )

    # -- follow-up -------------------------------------------------------------------------
    async def follow_up(self, timer: TimerRecord) -> None:
        """A `run.follow_up` timer came due: the playbook's next step, if the alert still fires.

        Whatever the step does not settle (a refusal, a failure, its own `run.escalate`) goes to
        humans: a follow-up is never retried.
        """
        p = self._p
        spec = p.registry.get(timer.playbook or "")
        episode = await p.store.get_episode(timer.episode_id)
        if spec is None or spec.follow_up is None or episode is None or timer.run_id is None:
            raise LookupError(f"cannot follow up: playbook {timer.playbook!r} or episode is gone")
        follow_up = spec.follow_up
        settled = await self._settled(episode, timer.run_id)
        if settled:
            await p.store.record_decision(
                episode.id,
                spec.name,
                DecisionKind.SKIPPED,
                f"no follow-up: {settled}",
                timer.run_id,
            )
            return
        target = spec.target(episode.labels, p.scope)
        run, kwargs, log = self._step(timer, spec, target, episode, "follow_up")

        async def call() -> None:
            await follow_up(**kwargs, data=handler_data.load(follow_up, timer.payload.get("data")))

        ending = await p.executor.execute(run, call, log, what="follow-up")
        kind = DecisionKind(ending.state().value)
        error = (
            f"follow-up refused: {ending.refused}"
            if ending.refused is not None
            else f"follow-up failed: {_failure(ending)}"
            if ending.failure is not None
            else None
        )
        escalation = "; ".join(filter(None, [error, *run.escalations]))
        details = {
            "kind": "follow_up",
            "playbook": spec.name,
            "target": target.key,
            "mode": (Mode.SHADOW if run.dry_run else Mode.AUTO).value,
            "evidence": run.evidence_data,
        }
        said = Said(
            kind,
            escalation or "; ".join([f"follow-up: {kind.value}", *run.notes]),
            report="follow_up",
            escalation=escalation or None,
            details=details,
        )
        await p.executor.say(episode.id, spec.name, timer.run_id, said)
        if escalation:
            await p.incidents.hold(timer.run_id, escalation)

    async def _settled(self, episode: EpisodeRecord, run_id: int) -> str | None:
        """Why no follow-up is needed, if it is not. The verification counts too: Prometheus
        may have seen the fix work before Alertmanager sent the resolved notification."""
        if episode.status != "firing":
            return "the alert resolved"
        found = await self._p.store.verifications_for(episode.id)
        mine = [v.result for v in found if v.run_id == run_id]
        if mine and mine[-1] == VerificationResult.VERIFIED:
            return "the verification proved the fix"
        return None

    # -- shared ----------------------------------------------------------------------------
    def _step(
        self,
        timer: TimerRecord,
        spec: PlaybookSpec,
        target: Target,
        episode: EpisodeRecord,
        step: str,
    ) -> tuple[EngineRun, dict[str, Any], Any]:
        """The run a later step acts as: the run that asked for it, in the mode it ran in."""
        assert timer.run_id is not None
        dry_run = bool(timer.payload.get("dry_run", True))
        mode = Mode.AUTO if not dry_run else Mode.SHADOW
        log = self.log.bind(
            episode=episode.id,
            playbook=spec.name,
            target=target.key,
            run=timer.run_id,
            **{step: True},
        )
        run = self._p.new_run(spec, target, episode.id, timer.run_id, dry_run, log, step)
        alert = episode_alert(episode, "resolved" if step == "revert" else "firing")
        return run, self._p.kwargs(spec, target, episode, alert, run, log, mode), log


def _failure(ending: Ending) -> str:
    """What ended a step early: the exception's type and message (a refusal's too), or a
    timeout's own words."""
    if ending.exception is not None and not isinstance(ending.exception, TimeoutError):
        return f"{type(ending.exception).__name__}: {ending.exception}"
    return ending.failure or ""
