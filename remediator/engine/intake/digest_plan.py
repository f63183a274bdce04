"""Digesting as a decision: a slice of journaled notifications, and what is known of their
episodes, in; the plan of what changes out. Pure: no I/O, so the rules are read and tested
here, and any store applies the plan the same way (engine/intake/digest.py drives both).

Per alert (the episode is the alert's fingerprint and startsAt):
  unknown, firing       -> a new episode; dispatched if a playbook may want it (`needs_work`),
                           else decided on arrival (`no_playbook`), which is the bulk of a storm;
  unknown, resolved     -> a new episode, closed on arrival;
  firing, now resolved  -> resolved; dispatched to close what it opened, unless nothing ran;
  anything else         -> a re-send: counted, no work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from remediator.alertmanager import (
    Alert,
    AlertData,
    NotificationData,
    aware,
    episode_id_at,
    label_fingerprint,
)
from remediator.engine import reasons
from remediator.store.records import (
    DecisionKind,
    Digested,
    DigestedNotification,
    DigestPlan,
    EpisodeState,
    JournalEntry,
    NewEpisode,
    ResentAlert,
    ResolvedEpisode,
    WorkItem,
    WorkKind,
)

NeedsWork = Callable[[Mapping[str, str]], bool]
# (alert, episode id, fingerprint, startsAt in the id's form): worked out once per alert.
Keyed = tuple[AlertData, str, str, str]


@dataclass(frozen=True)
class Slice:
    batch: Sequence[tuple[JournalEntry, NotificationData]]
    keyed: list[list[Keyed]]

    @property
    def episode_ids(self) -> list[str]:
        """The episodes the slice touches: what to ask the store about before planning."""
        return list({key[1] for alerts in self.keyed for key in alerts})


def keyed(batch: Sequence[tuple[JournalEntry, NotificationData]]) -> Slice:
    return Slice(batch, [[_key(a) for a in data["alerts"]] for _, data in batch])


def _key(alert: AlertData) -> Keyed:
    fingerprint = alert.get("fingerprint") or label_fingerprint(alert["labels"])
    starts = aware(alert["startsAt"]).astimezone(UTC).isoformat(timespec="microseconds")
    return alert, episode_id_at(fingerprint, starts), fingerprint, starts


def resolved_at(alert: AlertData, at: datetime) -> datetime:
    """endsAt when it is after startsAt, else when it arrived."""
    ends = alert.get("endsAt")
    if ends is not None and aware(ends) > aware(alert["startsAt"]):
        return aware(ends)
    return at


def plan_digest(
    slice_: Slice,
    known: Mapping[str, EpisodeState],
    needs_work: NeedsWork | None,
    at: datetime,
) -> DigestPlan:
    plan = DigestPlan()
    seen = dict(known)  # what this slice itself changes counts for its later alerts
    for (entry, data), alerts in zip(slice_.batch, slice_.keyed, strict=True):
        truncated = data.get("truncatedAlerts", 0) > 0
        work: list[WorkItem] = []
        new = resent = resolved = 0
        for alert, eid, fingerprint, starts in alerts:
            state = seen.get(eid)
            firing = alert["status"] == "firing"
            if state is None:
                wanted = firing and (needs_work is None or needs_work(alert["labels"]))
                plan.new.append(
                    NewEpisode(
                        alert=alert,
                        id=eid,
                        fingerprint=fingerprint,
                        starts_at=starts,
                        notification_id=entry.id,
                        truncated=truncated,
                        wanted=wanted,
                        resolved_at=None if firing else resolved_at(alert, at),
                    )
                )
                seen[eid] = EpisodeState(alert["status"], no_work=firing and not wanted)
                if wanted:
                    work.append(WorkItem(WorkKind.FIRING, eid, Alert.from_data(alert)))
                elif firing:
                    plan.decisions.append((eid, DecisionKind.NO_PLAYBOOK, reasons.NO_PLAYBOOK))
                new += firing
            elif not firing and state.status == "firing":
                # Nothing ran for a no-work episode: nothing to close, report or undo.
                plan.resolved.append(
                    ResolvedEpisode(eid, resolved_at(alert, at), truncated, state.no_work)
                )
                seen[eid] = EpisodeState("resolved", state.no_work)
                if state.no_work:
                    plan.decisions.append((eid, DecisionKind.RESOLVED, reasons.RESOLVED))
                else:
                    work.append(WorkItem(WorkKind.RESOLVED, eid, Alert.from_data(alert)))
                resolved += 1
            else:
                plan.resent.append(ResentAlert(eid, truncated))
                resent += 1
        plan.notifications.append(
            DigestedNotification(
                entry=entry,
                group_key=data.get("groupKey", ""),
                receiver=data.get("receiver", ""),
                status=data["status"],
                alerts=len(data["alerts"]),
                truncated_alerts=data.get("truncatedAlerts", 0),
                new_episodes=new,
            )
        )
        plan.results.append(Digested(entry.id, work, new, resent, resolved))
    return plan
