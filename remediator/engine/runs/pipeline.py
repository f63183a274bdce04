"""One alert's way through the decision pipeline, after it was durably recorded.

firing:   match playbooks -> resolve the target (valid names, inside the namespace scope;
          else refused before anything runs) -> claim (episode, playbook) -> per-target lock
          -> run the playbook under its mode and timeout (every action through the gate)
          -> record the outcome -> verify / report / escalate.
resolved: never acts; closes the episode (escalations resolved, reports updated).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from remediator.alertmanager import Alert
from remediator.clock import Clock
from remediator.config import Mode, Settings
from remediator.engine import reasons
from remediator.engine.delivery.progress import RunProgress
from remediator.engine.guards.blast import scope_refusal
from remediator.engine.hooks import (
    ActionHooks,
    Approvals,
    Escalator,
    Guards,
    Reporter,
    StormGate,
    Verifier,
)
from remediator.engine.runs.executor import RunExecutor, Said
from remediator.engine.runs.incidents import Incidents
from remediator.engine.runs.locks import KeyedLocks
from remediator.engine.runs.modes import PlaybookModes
from remediator.engine.runs.run import REPLICAS, REVERT, EngineRun
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import (
    ClientFactory,
    PlaybookSpec,
    Registry,
    ResolveScope,
    Target,
    TargetError,
)
from remediator.store import Store
from remediator.store.records import (
    DecisionKind,
    EpisodeRecord,
    RunState,
    WorkItem,
    WorkKind,
)

# Refusals that say nothing new about a storm: the breaker's own, GitOps policies (a
# configured choice to hand a change to humans, not a sign of trouble), and a run another
# replica owns (engine/runs/run.py).
_NOT_A_REFUSAL_BURST = frozenset({"storm_breaker", "gitops", REPLICAS})
# The kind of refusal (and the start of its reason) for a target outside the namespace scope.
OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Choice:
    """Which playbook an alert gets, and why the others do not (also used by `explain`)."""

    chosen: PlaybookSpec | None
    target: Target | None
    target_error: str | None
    passed_over: list[tuple[PlaybookSpec, str]] = field(default_factory=list)
    # Why the resolved target lies outside `guards.blast_radius`' namespaces: refused before
    # the playbook runs, so nothing (not even a read) is sent there.
    out_of_scope: str | None = None

    @property
    def refusal(self) -> tuple[str, str] | None:
        """(kind, reason) when the chosen playbook must not run for this alert at all."""
        if self.chosen is None:
            return None
        if self.target is None:
            return "no_target", f"no valid target: {self.target_error}"
        if self.out_of_scope is not None:
            return OUT_OF_SCOPE, f"{OUT_OF_SCOPE}: {self.target.key}: {self.out_of_scope}"
        return None


def choose(
    registry: Registry, settings: Settings, labels: Mapping[str, str], scope: ResolveScope
) -> Choice:
    """The highest-priority enabled playbook that matches; its target resolved from labels and
    checked against the namespace scope (`guards.blast_radius`), before anything is read."""
    passed: list[tuple[PlaybookSpec, str]] = []
    chosen: PlaybookSpec | None = None
    for spec in registry.match(labels):
        if not settings.playbook(spec.name).enabled:
            passed.append((spec, "disabled in the configuration"))
        elif chosen is None:
            chosen = spec
        else:
            passed.append((spec, f"lower priority than {chosen.name}"))
    if chosen is None:
        return Choice(None, None, None, passed)
    try:
        target = chosen.target(labels, scope)
    except TargetError as exc:
        return Choice(chosen, None, str(exc), passed)
    outside = scope_refusal(target, settings.guards.blast_radius)
    return Choice(chosen, target, None, passed, out_of_scope=outside)


class Pipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        params: Mapping[str, BaseModel],
        store: Store,
        metrics: Metrics,
        guards: Guards,
        escalator: Escalator,
        reporter: Reporter,
        verifier: Verifier,
        approvals: Approvals,
        clients: Mapping[str, ClientFactory],
        scope: ResolveScope,
        modes: PlaybookModes,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = registry
        self.params = params
        self.store = store
        self.metrics = metrics
        self.guards = guards
        self.escalator = escalator
        self.reporter = reporter
        self.verifier = verifier
        self.approvals = approvals
        self.clients = clients
        self.scope = scope
        # Operator overrides win over the configuration and take effect for the next run.
        self.modes = modes
        # Set by the engine: asked before a firing alert runs anything, told of refusals.
        self.storm: StormGate | None = None
        # Set by the engine: what follows an action (engine/runs/gitops.py).
        self.action_hooks: ActionHooks | None = None
        self.locks = KeyedLocks()
        self.executor = RunExecutor(
            store=store,
            reporter=reporter,
            escalator=escalator,
            locks=self.locks,
            timeout_seconds=settings.dispatch.playbook_timeout_seconds,
        )
        self.incidents = Incidents(store, settings.incidents, reporter, clock=clock)
        # One admission at a time: guard check + intent (see EngineRun.act).
        self.admission = asyncio.Lock()
        # Set by the engine: whether this replica is still live when the store refused an
        # intent as fenced (engine/runs/replicas.py).
        self.confirm_live: Callable[[], Awaitable[bool]] | None = None
        self.log = get_logger(component="pipeline")

    def mode_of(self, playbook: str) -> Mode:
        return self.modes.of(playbook)

    async def handle(self, item: WorkItem) -> None:
        if item.kind is WorkKind.FIRING:
            await self._firing(item)
        else:
            await self._resolved(item)

    async def _resolved(self, item: WorkItem) -> None:
        episode = await self.store.get_episode(item.episode_id)
        await self.store.record_decision(
            item.episode_id, None, DecisionKind.RESOLVED, reasons.RESOLVED
        )
        await self.escalator.resolved(item.episode_id)
        if episode is not None and episode.resolved_at is not None:
            await self.store.arm_timers(item.episode_id, episode.resolved_at)
        details: dict[str, Any] = {"alertname": item.alert.alertname}
        if episode is not None and episode.resolved_at is not None:
            details["seconds_to_resolve"] = (
                episode.resolved_at - episode.starts_at
            ).total_seconds()
        await self.reporter.report(item.episode_id, "resolved", details)

    def needs_work(self, labels: Mapping[str, str]) -> bool:
        """Whether a new firing alert (its labels) needs dispatch. Decided while digesting, so
        alerts no playbook handles (the bulk of a storm) cost one row instead of a trip through
        the workers; a critical one still goes through, to be escalated."""
        if labels.get("severity") == "critical":
            return True
        return any(
            self.settings.playbook(spec.name).enabled for spec in self.registry.match(labels)
        )

    async def _firing(self, item: WorkItem) -> None:
        alert = item.alert
        log = self.log.bind(episode=item.episode_id, alertname=alert.alertname)
        episode = await self.store.get_episode(item.episode_id)
        if episode is None or episode.status != "firing":
            await self.store.record_decision(
                item.episode_id, None, DecisionKind.SKIPPED, "resolved before it was dispatched"
            )
            return
        if self.storm is not None and not await self.storm.admit([item]):
            return  # held by the open storm breaker
        choice = choose(self.registry, self.settings, alert.labels, self.scope)
        for other, why in choice.passed_over:
            await self.store.record_decision(item.episode_id, other.name, DecisionKind.SKIPPED, why)
        spec = choice.chosen
        if spec is None:
            await self._no_playbook(episode, log)
            return
        if choice.refusal is not None:
            kind, reason = choice.refusal
            target = choice.target.key if choice.target is not None else None
            await self._refuse(item, spec, reason, log, kind=kind, target=target)
            return
        assert choice.target is not None  # a chosen playbook without one is a refusal
        missing = sorted(spec.needs - set(self.clients))
        if missing:
            reason = (
                f"needs the {', '.join(missing)} client, which the configuration does not "
                "provide (see `kubernetes.mode` and `databases`)"
            )
            await self._refuse(item, spec, reason, log, kind="missing_client")
            return
        if await self.incidents.turn_away(spec.name, choice.target.key, episode):
            return
        await self.store.record_decision(
            item.episode_id, spec.name, DecisionKind.MATCHED, f"target {choice.target.key}"
        )
        await self.run_playbook(spec, choice.target, episode, item, log)

    async def _refuse(
        self,
        item: WorkItem,
        spec: PlaybookSpec,
        reason: str,
        log: Any,
        *,
        kind: str,
        target: str | None = None,
    ) -> None:
        """The playbook cannot run for this alert at all: recorded and escalated (refusals of
        one kind aggregated, engine/delivery/escalation_policy.py), no run."""
        await self.store.record_decision(item.episode_id, spec.name, DecisionKind.REFUSED, reason)
        self.metrics.runs.labels(playbook=spec.name, outcome="refused").inc()
        log.warning("refused", playbook=spec.name, reason=reason)
        if self.storm is not None:
            await self.storm.refused(item.episode_id, kind)
        details = {
            "kind": "refused",
            "refusal": kind,
            "playbook": spec.name,
            "mode": self.mode_of(spec.name).value,
        }
        if target is not None:
            details["target"] = target
        await self.escalator.escalate(item.episode_id, None, reason, details)

    async def _no_playbook(self, episode: EpisodeRecord, log: Any) -> None:
        await self.store.record_decision(
            episode.id, None, DecisionKind.NO_PLAYBOOK, reasons.NO_PLAYBOOK
        )
        log.info("no playbook")
        if episode.labels.get("severity") == "critical":
            await self.escalator.escalate(
                episode.id,
                None,
                "a critical alert matches no playbook",
                {"kind": "no_playbook", "alertname": episode.alertname, "labels": episode.labels},
            )

    async def run_playbook(
        self,
        spec: PlaybookSpec,
        target: Target,
        episode: EpisodeRecord,
        item: WorkItem,
        log: Any,
        *,
        mode: Mode | None = None,
        run_id: int | None = None,
    ) -> RunState:
        """Run one playbook once for the episode. `run_id` resumes an approved run."""
        if mode is None and self.store.shared:
            # Operators may have changed the mode through another replica.
            known = {s.name for s in self.registry}
            self.modes.load(await self.store.playbook_modes(), known)
        mode = mode or self.mode_of(spec.name)
        if run_id is None:
            run_id = await self.store.claim_run(episode.id, spec.name, target.key, mode.value)
            if run_id is None:
                await self.store.record_decision(
                    episode.id, spec.name, DecisionKind.SKIPPED, "already handled for this episode"
                )
                return RunState.NOOP
            self.metrics.claims.labels(kind="run").inc()
        dry_run = mode is not Mode.AUTO
        log = log.bind(playbook=spec.name, target=target.key, run=run_id, mode=mode.value)
        run = self.new_run(spec, target, episode.id, run_id, dry_run, log)
        kwargs = self.kwargs(spec, target, episode, item.alert, run, log, mode)

        def started() -> None:
            log.info("run started")
            run.progress.started()

        async def call() -> None:
            await spec.fn(**kwargs)

        ending = await self.executor.execute(run, call, log, on_start=started)
        error = ending.error
        guard = ending.refused.guard if ending.refused is not None else None
        state = ending.state(approve=mode is Mode.APPROVE)
        escalation = "; ".join(ending.escalations) or None
        await self.store.finish_run(
            run_id, state, error=error, evidence=run.evidence_data, escalation=escalation
        )
        # A revert the run declared counts only if it changed something.
        await self.store.release_timers(run_id, REVERT, arm=state is RunState.ACTED)
        if state is RunState.ACTED:
            await self.incidents.acted(spec.name, target.key, episode.id, run_id)
            if escalation:
                await self.incidents.hold(run_id, escalation)
        # A run that did its job within a cap says what the cap left (`run.note`).
        reason = error or "; ".join([state.value, *run.notes])
        self.metrics.runs.labels(playbook=spec.name, outcome=state.value).inc()
        log.info("run finished", state=state.value, error=error)
        details = {
            "kind": state.value,
            "playbook": spec.name,
            "target": target.key,
            "mode": mode.value,
            "evidence": run.evidence_data,
        }
        if guard is not None:
            details["guard"] = guard
            if self.storm is not None and guard not in _NOT_A_REFUSAL_BURST:
                await self.storm.refused(episode.id, guard)
        if state is RunState.PENDING_APPROVAL:
            # Before the report: it shows the approval's deadline (and in Slack, its buttons).
            await self.approvals.requested(run)
        said = Said(
            DecisionKind(state.value),
            reason,
            report=f"run_{state.value}",
            escalation=escalation,
            details=details,
        )
        await self.executor.say(episode.id, spec.name, run_id, said)
        if state is RunState.ACTED and spec.verify is not None:
            await self.verifier.schedule(spec, run, item.alert)
        return state

    def new_run(
        self,
        spec: PlaybookSpec,
        target: Target,
        episode_id: str,
        run_id: int,
        dry_run: bool,
        log: Any,
        step: str = "run",
    ) -> EngineRun:
        about = {"playbook": spec.name, "target": target.key, "run_id": run_id, "step": step}
        return EngineRun(
            run_id=run_id,
            episode_id=episode_id,
            playbook=spec.name,
            target=target,
            dry_run=dry_run,
            store=self.store,
            guards=self.guards,
            admission=self.admission,
            clock=self.clock,
            log=log,
            has_revert=spec.revert is not None,
            has_follow_up=spec.follow_up is not None,
            budget=spec.budget,
            hooks=self.action_hooks,
            confirm=self.confirm_live,
            # A dry run waits for nothing: only real changes are followed as they happen.
            progress=RunProgress(
                self.reporter,
                episode_id,
                about,
                after=self.settings.reports.progress_after_seconds,
                enabled=not dry_run and self.reporter.delivers,
                clock=self.clock,
            ),
        )

    def view_of(
        self,
        spec: PlaybookSpec,
        target: Target,
        episode_id: str,
        run_id: int,
        step: str = "recovery",
    ) -> EngineRun:
        """The run as seen after the fact (start-up reconciliation, a later check of its
        change): its clients read and record on it; only what the step itself does acts."""
        log = self.log.bind(episode=episode_id, playbook=spec.name, run=run_id, step=step)
        return self.new_run(spec, target, episode_id, run_id, False, log, step)

    def kwargs(
        self,
        spec: PlaybookSpec,
        target: Target,
        episode: EpisodeRecord,
        alert: Alert,
        run: EngineRun,
        log: Any,
        mode: Mode,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "alert": alert,
            "episode": episode,
            "params": self.params[spec.name],
            "target": target,
            "run": run,
            "log": log,
            "mode": mode,
            "dry_run": run.dry_run,
        }
        for name, factory in self.clients.items():
            kwargs[name] = factory(run)
        return kwargs


def episode_alert(episode: EpisodeRecord, status: Literal["firing", "resolved"]) -> Alert:
    """The alert as recorded, for handlers that run later from a timer."""
    return Alert(
        status=status,
        labels=episode.labels,
        annotations=episode.annotations,
        startsAt=episode.starts_at,
        endsAt=episode.resolved_at if status == "resolved" else None,
        generatorURL=episode.generator_url,
        fingerprint=episode.fingerprint,
    )
