"""Incidents: the trouble of one target under one playbook, across alert episodes.

An alert episode is what Alertmanager sees; an incident is what the on-call sees. The
replacement pod of a crash-looping Deployment fires a new alert (a new episode), and so does a
lag alert that re-fires during a scale-back's cool-down; both are the same trouble of the same
workload. So the engine keeps an incident per (playbook, target):

  * opened by the first run that changes something; later runs on the target join it;
  * held once it was escalated after acting (a follow-up found the remedy did not help, or
    an acting run asked for humans): later alerts for the target join it and act on nothing,
    until an operator clears it (admin API) or no alert of it was seen for
    `incidents.quiet_seconds` ("never twice" per workload and incident, not per episode);
  * the revert of its runs is one: the last due scale-back restores the state found before
    the incident's first change (its baseline), see `Pipeline.revert`;
  * closed by that revert, by an operator, or by the quiet period.
"""

from __future__ import annotations

from datetime import timedelta

from remediator.clock import Clock
from remediator.config import IncidentSettings
from remediator.engine.hooks import Reporter
from remediator.logs import get_logger
from remediator.store import Store
from remediator.store.records import DecisionKind, EpisodeRecord, IncidentRecord, IncidentState

SYSTEM = "remediator"


class Incidents:
    def __init__(
        self, store: Store, settings: IncidentSettings, reporter: Reporter, *, clock: Clock
    ) -> None:
        self._store = store
        self._clock = clock
        self._quiet = timedelta(seconds=settings.quiet_seconds)
        self._reporter = reporter
        self._log = get_logger(component="incidents")

    async def current(self, playbook: str, target_key: str) -> IncidentRecord | None:
        """The live incident of (playbook, target); one quiet for too long is closed here."""
        found = await self._store.current_incident(playbook, target_key)
        if found is None:
            return None
        if self._clock.now() - found.last_seen > self._quiet:
            quiet = self._quiet.total_seconds()
            await self._store.close_incident(
                found.id, who=SYSTEM, reason=f"no alert of it for {quiet:g} s"
            )
            return None
        return found

    async def turn_away(self, playbook: str, target_key: str, episode: EpisodeRecord) -> bool:
        """True when a held incident covers the target: the episode joins it, nothing runs,
        and the episode's record and thread say why. No new page: the incident's escalation
        already reached humans."""
        found = await self.current(playbook, target_key)
        if found is None or found.state != IncidentState.HELD:
            return False
        await self._store.join_incident(found.id, episode.id, None, "held")
        reason = (
            f"held: incident {found.id} of {playbook} on {target_key} was escalated "
            f"({found.held_reason}); nothing is done until an operator clears it "
            f"(POST /admin/incidents/{found.id}/clear) or no alert of it is seen for "
            f"{self._quiet.total_seconds():g} s"
        )
        await self._store.record_decision(episode.id, playbook, DecisionKind.HELD, reason)
        self._log.warning("held by incident", episode=episode.id, incident=found.id)
        await self._reporter.report(
            episode.id,
            "run_held",
            {
                "kind": "held",
                "playbook": playbook,
                "target": target_key,
                "evidence": {
                    "incident": found.id,
                    "held_because": found.held_reason,
                    "why": reason,
                },
            },
        )
        return True

    async def acted(
        self, playbook: str, target_key: str, episode_id: str, run_id: int
    ) -> IncidentRecord:
        """A run changed something: it opens the target's incident or joins it."""
        await self.current(playbook, target_key)  # closes one that went quiet first
        return await self._store.open_incident(playbook, target_key, episode_id, run_id)

    async def hold(self, run_id: int, reason: str) -> None:
        """Humans were called after the run's change: its incident holds further runs."""
        found = await self._store.incident_of_run(run_id)
        if found is not None and found.state != IncidentState.CLOSED:
            await self._store.hold_incident(found.id, reason)
            self._log.warning("incident held", incident=found.id, reason=reason)

    async def close_after_revert(self, run_id: int, reason: str) -> None:
        found = await self._store.incident_of_run(run_id)
        if found is not None and found.state == IncidentState.OPEN:
            await self._store.close_incident(found.id, who=SYSTEM, reason=reason)

    async def clear(self, incident_id: int, *, who: str, reason: str) -> IncidentRecord | None:
        """An operator ends the incident (audited): the next alert may act again."""
        return await self._store.close_incident(incident_id, who=who, reason=reason, audit=True)
