"""The storm watch: every firing alert is seen by the storm picture before it is dispatched.

The digester hands each slice's new firing work here before queueing any of it: the alerts a
playbook handles are recorded as sightings (by target; an alert whose target cannot be resolved
is a target of its own), the breaker decides on the whole picture, and while it is open every
firing alert is held instead of dispatched: one sighting row listing it under the breaker, a
`held` decision, its episode marked handled. No claim, run, action or escalation per alert:
holding costs what digesting does, and the breaker's one page covers them all. The pipeline
asks again before it runs anything (work queued before the breaker opened, or reloaded from
the store after a restart), and tells the watch about refusals before acting, which count
towards a refusal burst.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from remediator.config import Mode
from remediator.engine.guards.storm import StormBreaker
from remediator.engine.runs.pipeline import Pipeline, choose
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Store
from remediator.store.records import BreakerRecord, WorkItem, WorkKind
from remediator.store.storm_records import Sighting

OnHold = Callable[[BreakerRecord, int], Awaitable[None]]


class StormWatch:
    def __init__(
        self,
        store: Store,
        breaker: StormBreaker,
        pipeline: Pipeline,
        metrics: Metrics,
        on_hold: OnHold | None = None,
    ) -> None:
        self._store = store
        self._breaker = breaker
        self._pipeline = pipeline
        self._metrics = metrics
        self._on_hold = on_hold
        self._log = get_logger(component="storm-watch")

    def sighting(self, item: WorkItem) -> Sighting:
        labels = item.alert.labels
        p = self._pipeline
        choice = choose(p.registry, p.settings, labels, p.scope)
        namespace = labels.get("namespace")
        name = item.alert.alertname
        if choice.chosen is None:  # a critical alert no playbook handles: listed, not counted
            return Sighting(item.episode_id, f"alert/{item.episode_id}", namespace, None, name)
        if choice.target is None:  # refused before acting: its own target
            key = f"unresolved/{choice.chosen.name}/{item.episode_id}"
            return Sighting(item.episode_id, key, namespace, choice.chosen.name, name)
        target = choice.target
        return Sighting(item.episode_id, target.key, target.namespace, choice.chosen.name, name)

    def mode(self) -> str | None:
        """`shadow` when every enabled playbook is in shadow mode: nothing would have been done,
        so the breaker's page is a report, not a page (see engine/delivery/escalate.py)."""
        p = self._pipeline
        modes = {
            p.mode_of(spec.name) for spec in p.registry if p.settings.playbook(spec.name).enabled
        }
        return Mode.SHADOW.value if modes <= {Mode.SHADOW} else None

    async def admit(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        """The work to dispatch: all of it, or, while the breaker is open, none of the firing."""
        firing = [i for i in items if i.kind is WorkKind.FIRING]
        if not firing:
            return list(items)
        sightings = [self.sighting(i) for i in firing]
        breaker = await self._breaker.status()
        if breaker is None:
            counted = [s for s in sightings if s.playbook is not None]
            if not counted:
                return list(items)
            await self._store.add_sightings(counted)
            breaker = await self._breaker.evaluate_targets(self.mode())
            if breaker is None:
                return list(items)
        reason = f"held by the storm breaker (open since {breaker.opened_at.isoformat()})"
        await self._store.hold_alerts(breaker.id, sightings, reason)
        self._metrics.storm_held.inc(len(sightings))
        self._log.info("held by the storm breaker", alerts=len(sightings), breaker=breaker.id)
        if self._on_hold is not None:
            await self._on_hold(breaker, len(sightings))
        return [i for i in items if i.kind is not WorkKind.FIRING]

    async def refused(self, episode_id: str, kind: str) -> None:
        """An alert was refused before acting: it counts towards a refusal burst."""
        await self._store.mark_refused(episode_id, kind)
        if await self._breaker.status() is None:
            await self._breaker.evaluate_targets(self.mode())
