"""The engine: store, intake, dispatcher and pipeline assembled and run as one unit.

`Engine.start` opens the store, reconciles interrupted intents, and starts the background
tasks; `Engine.stop` stops them in reverse. The HTTP surface holds one Engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from remediator.config import Settings
from remediator.engine.dispatch import Dispatcher
from remediator.engine.hooks import (
    Escalator,
    Guards,
    NoGuards,
    NoReports,
    NoVerification,
    RecordingEscalator,
    Reporter,
    Verifier,
)
from remediator.engine.intake import Intake
from remediator.engine.pipeline import Pipeline
from remediator.engine.recovery import reconcile_interrupted
from remediator.engine.run import REVERT
from remediator.engine.timers import Timers
from remediator.engine.wiring import ClientSet, build_clients
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.playbook import Registry
from remediator.store import Store, make_store


@dataclass
class Hooks:
    guards: Guards | None = None
    escalator: Escalator | None = None
    reporter: Reporter | None = None
    verifier: Verifier | None = None


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
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.params = params
        self.metrics = metrics or Metrics()
        self.store = store or make_store(settings.state)
        self._given_clients = clients
        self.clients = clients or ClientSet()
        self._hooks = hooks or Hooks()
        self.log = get_logger(component="engine")
        self.started = False
        self.pipeline: Pipeline
        self.dispatcher: Dispatcher
        self.intake: Intake
        self.timers: Timers

    async def start(self) -> None:
        await self.store.open()
        if self._given_clients is None:
            self.clients = await build_clients(self.settings)
        hooks = self._hooks
        escalator = hooks.escalator or RecordingEscalator(self.store, self.metrics)
        self.pipeline = Pipeline(
            settings=self.settings,
            registry=self.registry,
            params=self.params,
            store=self.store,
            metrics=self.metrics,
            guards=hooks.guards or NoGuards(),
            escalator=escalator,
            reporter=hooks.reporter or NoReports(),
            verifier=hooks.verifier or NoVerification(),
            clients=self.clients.factories,
            scope=self.clients.scope,
        )
        self.timers = Timers(self.store)
        self.timers.on(REVERT, self.pipeline.revert)
        interrupted = await reconcile_interrupted(self.store, escalator)
        if interrupted:
            self.log.warning("reconciled interrupted actions", count=interrupted)
        dispatch = self.settings.dispatch
        self.dispatcher = Dispatcher(
            self.store,
            self.pipeline.handle,
            self.metrics,
            queue_size=dispatch.queue_size,
            workers=dispatch.workers,
        )
        self.intake = Intake(
            self.store, self.dispatcher, self.metrics, batch_max=self.settings.state.batch_max
        )
        await self.dispatcher.start()
        await self.intake.start()
        await self.timers.start()
        self.started = True
        self.log.info(
            "engine started",
            playbooks=[s.name for s in self.registry],
            mode=self.settings.mode.value,
            state=str(self.settings.state.path),
        )

    async def stop(self) -> None:
        if self.started:
            await self.timers.stop()
            await self.intake.stop()
            await self.dispatcher.stop()
            self.started = False
        if self._given_clients is None:
            await self.clients.close()
        await self.store.close()
