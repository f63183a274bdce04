"""The engine: store, intake, dispatcher and pipeline assembled and run as one unit.

`Engine.start` opens the store, builds the governance (guards, escalation through the outbox,
verification, approvals) from the settings, joins the replicas sharing the store
(engine/runs/replicas.py), reconciles interrupted intents, and starts the background tasks;
`Engine.stop` stops them in reverse. A replica that was fenced halts its work at once and
sets `lost`, so that the process exits and is restarted as a new replica. The HTTP surface
holds one Engine. A test can replace any seam with its own `Hooks`, and give it a clock
(remediator/clock.py): the store and every component read time from that one clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial

import aiohttp
from pydantic import BaseModel

from remediator.clients.prometheus import PrometheusClient
from remediator.clock import Clock, SystemClock
from remediator.config import Settings
from remediator.engine.delivery.approval_view import approvers
from remediator.engine.delivery.channels import SLACK, build_channels, report_channel_escalates
from remediator.engine.delivery.dead_letters import DeadLetterAlarm
from remediator.engine.delivery.escalate import Escalation
from remediator.engine.delivery.escalation_policy import SUMMARY, EscalationPolicy
from remediator.engine.delivery.outbox import Deliver, Hold, Outbox
from remediator.engine.delivery.report import SLACK_REPORT, SlackReports
from remediator.engine.delivery.report_delivery import Scrubber, SlackReportDelivery, secret_values
from remediator.engine.delivery.storm_report import StormMessages
from remediator.engine.governance.api import Governance
from remediator.engine.governance.approvals import APPROVAL_TIMEOUT, Approvals
from remediator.engine.governance.slack_approvals import SlackApprovals, wire_slack_approvals
from remediator.engine.governance.storm_watch import StormWatch
from remediator.engine.guards import build_guards
from remediator.engine.guards.storm import StormBreaker
from remediator.engine.hooks import (
    Approvals as ApprovalsHook,
)
from remediator.engine.hooks import (
    Escalator,
    Guards,
    NoReports,
    Reporter,
    Verifier,
)
from remediator.engine.intake.digest import Digester
from remediator.engine.intake.dispatch import Dispatcher
from remediator.engine.intake.intake import Intake
from remediator.engine.runs.gitops import CHECK as GITOPS_CHECK
from remediator.engine.runs.gitops import RESUME as GITOPS_RESUME
from remediator.engine.runs.gitops import GitOpsFollowUps
from remediator.engine.runs.later_steps import LaterSteps
from remediator.engine.runs.modes import PlaybookModes
from remediator.engine.runs.pipeline import Pipeline
from remediator.engine.runs.recovery import reconcile_interrupted
from remediator.engine.runs.replicas import Coordinator, replica_name
from remediator.engine.runs.run import FOLLOW_UP, REVERT
from remediator.engine.runs.verify import VERIFY, Verification
from remediator.engine.timers import Timers
from remediator.engine.views import Views
from remediator.engine.wiring import ClientSet, build_clients, gitops_rules, prometheus_client
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Registry
from remediator.store import Store, make_store


@dataclass
class Hooks:
    """Seams a test (or an embedding) replaces; None means: built from the settings."""

    guards: Guards | None = None
    escalator: Escalator | None = None
    reporter: Reporter | None = None
    verifier: Verifier | None = None
    approvals: ApprovalsHook | None = None


class Engine:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        params: dict[str, BaseModel],
        *,
        metrics: Metrics | None = None,
        store: Store | None = None,
        clients: ClientSet | None = None,
        hooks: Hooks | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        # The one source of time for the store and every component (a test's manual clock).
        self.clock = clock or SystemClock()
        self.registry = registry
        self.params = params
        # Playbook modes (configuration + operator overrides), asked by runs, HTTP and CLI.
        self.modes = PlaybookModes(settings)
        self.metrics = metrics or Metrics()
        self.store = store or make_store(settings.state, self.clock)
        # What the admin API and the web page read (HTTP never reads the store itself).
        self.views = Views(self.store, settings.state.backend, self._dispatch_depth)
        self._given_clients = clients
        self.clients = clients or ClientSet()
        self._hooks = hooks or Hooks()
        self.log = get_logger(component="engine")
        self.started = False
        self.pipeline: Pipeline
        self.dispatcher: Dispatcher
        self.digester: Digester
        self.intake: Intake
        self.timers: Timers
        self.outbox: Outbox
        self.breaker: StormBreaker
        self.storm: StormWatch
        self.governance: Governance
        self.slack_approvals: SlackApprovals | None = None
        self.coordinator: Coordinator | None = None
        self.replica_name = replica_name()
        # Set once this replica was fenced: it stopped acting; the process should exit.
        self.lost = asyncio.Event()
        self.fenced_reason: str | None = None
        self._halting: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._prometheus: PrometheusClient | None = None

    def _dispatch_depth(self) -> int:
        dispatcher = getattr(self, "dispatcher", None)  # none before the engine starts
        return dispatcher.depth if dispatcher is not None else 0

    @property
    def replica(self) -> str:
        """This process's replica id (the owner of what it claims in the store)."""
        return self.store.replica

    @property
    def fenced(self) -> bool:
        return self.lost.is_set()

    def wake_timers(self) -> None:
        """Something became due now (a Slack click): do not wait for the timers' next poll."""
        self.timers.wake()

    async def start(self) -> None:
        await self.store.open()
        if self._given_clients is None:
            self.clients = await build_clients(self.settings)
        await self._build_governed_pipeline()
        state = self.settings.state
        self.coordinator = Coordinator(
            self.store,
            self.pipeline,
            self.metrics,
            lease_seconds=state.lease_seconds,
            fence_interval=state.fence_check_seconds,
            name=self.replica_name,
            on_lost=self._lost,
            forget_after=state.retention_days * 86400.0,
        )
        self.pipeline.confirm_live = self.coordinator.confirm
        await self.coordinator.register()
        if not self.store.shared:
            # The one process: whatever an earlier one left is reconciled now. With replicas
            # sharing the store, others may be live: the coordinator reconciles what expired
            # ones held (a replica that restarted is a new one; its old self's lease expires).
            interrupted = await reconcile_interrupted(self.pipeline)
            if interrupted:
                self.log.warning("reconciled interrupted runs", count=interrupted)
        dispatch = self.settings.dispatch
        self.dispatcher = Dispatcher(
            self.store,
            self.pipeline.handle,
            self.metrics,
            queue_size=dispatch.queue_size,
            workers=dispatch.workers,
        )
        self.digester = Digester(
            self.store,
            self.dispatcher,
            self.metrics,
            needs_work=self.pipeline.needs_work,
            admit=self.storm.admit,
            clock=self.clock,
        )
        self.intake = Intake(
            self.store,
            self.digester,
            self.metrics,
            batch_max=self.settings.state.batch_max,
            max_backlog=self.settings.webhook.max_backlog,
            clock=self.clock,
        )
        await self.breaker.status()  # the gauge shows a breaker left open before a restart
        await self.outbox.start()
        await self.dispatcher.start()
        await self.digester.start()
        await self.intake.start()
        await self.timers.start()
        await self.coordinator.start()
        self.started = True
        self.log.info(
            "engine started",
            playbooks=[s.name for s in self.registry],
            mode=self.settings.mode.value,
            state=str(self.settings.state.path),
            replica=self.replica,
            replica_name=self.replica_name,
        )

    def _lost(self, reason: str) -> None:
        """The coordinator found this replica fenced: stop acting now (from any task, so the
        halt runs as its own task: it may cancel the one that found out)."""
        self.fenced_reason = reason
        self.lost.set()
        if self._halting is None:
            self._halting = asyncio.create_task(self._halt())

    async def _halt(self) -> None:
        if not self.started:
            return
        await self.timers.stop()
        await self.dispatcher.stop()
        await self.digester.stop()
        await self.outbox.stop()

    async def _build_governed_pipeline(self) -> None:
        settings, store, metrics, hooks = self.settings, self.store, self.metrics, self._hooks
        clock = self.clock
        self.timers = Timers(store, clock=clock, metrics=metrics)
        self._session = aiohttp.ClientSession()
        channels: dict[str, Deliver] = build_channels(settings.escalation, self._session)
        holds: dict[str, Hold] = {}
        delivery: SlackReportDelivery | None = None
        if settings.reports.slack.enabled:
            shared = report_channel_escalates(settings)
            if shared:
                channels.pop(SLACK, None)  # one post per escalation, in the episode's thread
            # Without a Slack escalation channel of its own, the report thread calls humans.
            calls = shared or not settings.escalation.slack.channel
            mention = settings.escalation.slack.mention if calls else ""
            delivery = SlackReportDelivery(
                settings.reports,
                store,
                self._session,
                Scrubber(secret_values(settings)),
                mention=mention,
                clock=clock,
            )
            channels[SLACK_REPORT] = delivery
            holds[SLACK_REPORT] = delivery.hold
        self.outbox = Outbox(
            store,
            metrics,
            channels,
            settings.escalation.delivery,
            holds,
            clock=clock,
            lease_seconds=settings.state.lease_seconds,
        )
        self.storm_messages: StormMessages | None = None
        if delivery is not None:
            self.storm_messages = StormMessages(
                store,
                self.outbox,
                admin_url=settings.reports.admin_url,
                page_in_shadow=settings.escalation.page_in_shadow,
            )
            delivery.storm = self.storm_messages
        escalation = Escalation(
            store,
            metrics,
            self.outbox,
            page_in_shadow=settings.escalation.page_in_shadow,
            policy=EscalationPolicy(settings.escalation, clock),
            timers=self.timers,
            clock=clock,
        )
        self.timers.on(SUMMARY, escalation.on_summary)
        escalator = hooks.escalator or escalation
        self.outbox.on_dead_letter = DeadLetterAlarm(escalator, settings.escalation.delivery, clock)
        rules = gitops_rules(settings)
        governed = build_guards(settings.guards, store, escalator, metrics, clock, rules)
        self.breaker = governed.breaker
        approvals = Approvals(
            store=store,
            settings=settings.approval,
            escalator=escalator,
            approved=governed.approved,
            clock=clock,
        )
        slack_approvers = (
            partial(approvers, settings.approval.slack) if settings.approval.slack.enabled else None
        )
        reporter: Reporter = hooks.reporter or (
            SlackReports(store, self.outbox, approvers=slack_approvers, clock=clock)
            if settings.reports.slack.enabled
            else NoReports()
        )
        verifier = hooks.verifier
        if verifier is None:
            self._prometheus = prometheus_client(settings.prometheus)
            verification = Verification(
                store=store,
                metrics=metrics,
                prometheus=self._prometheus,
                escalator=escalator,
                reporter=reporter,
                breaker=self.breaker,
                timers=self.timers,
                bake_of=settings.bake_of,
                clock=clock,
            )
            self.timers.on(VERIFY, verification.on_timer)
            verifier = verification
        self.pipeline = Pipeline(
            settings=settings,
            registry=self.registry,
            params=self.params,
            store=store,
            metrics=metrics,
            guards=hooks.guards or governed.chain,
            escalator=escalator,
            reporter=reporter,
            verifier=verifier,
            approvals=hooks.approvals or approvals,
            clients=self.clients.factories,
            scope=self.clients.scope,
            modes=self.modes,
            clock=clock,
        )
        on_change = self.storm_messages.changed if self.storm_messages is not None else None
        self.storm = StormWatch(store, self.breaker, self.pipeline, metrics, on_hold=on_change)
        if on_change is not None:
            self.breaker.on_close.append(on_change)
        self.pipeline.storm = self.storm
        gitops = GitOpsFollowUps(store, rules, self.pipeline, escalator, reporter, clock=clock)
        self.pipeline.action_hooks = gitops
        self.timers.on(GITOPS_CHECK, gitops.on_check)
        self.timers.on(GITOPS_RESUME, gitops.on_resume)
        later = LaterSteps(self.pipeline)
        self.timers.on(REVERT, later.revert)
        self.timers.on(FOLLOW_UP, later.follow_up)
        self.timers.on(APPROVAL_TIMEOUT, approvals.on_timeout)
        self.governance = Governance(
            store=store,
            pipeline=self.pipeline,
            breaker=self.breaker,
            approvals=approvals,
            settings=settings.guards.kill_switch,
            reporter=reporter,
            outbox=self.outbox,
            clock=clock,
        )
        self.slack_approvals = wire_slack_approvals(
            settings,
            store=store,
            governance=self.governance,
            outbox=self.outbox,
            session=self._session,
            approvals=approvals,
            timers=self.timers,
            clock=clock,
        )
        await self.governance.load_modes()

    async def stop(self) -> None:
        if self._halting is not None:
            await self._halting
        if self.started:
            await self.timers.stop()
            await self.intake.stop()
            await self.digester.stop()
            await self.dispatcher.stop()
            await self.outbox.stop()
            self.started = False
        if self.coordinator is not None:
            await self.coordinator.stop()  # last: its lease ends once nothing here acts
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._prometheus is not None:
            self._prometheus.close()
            self._prometheus = None
        if self._given_clients is None:
            await self.clients.close()
        await self.store.close()
