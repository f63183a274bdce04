"""Digesting decided as a pure function: a slice and what is known in, the plan out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.alertmanager import NotificationData, validate_notification
from remediator.engine import reasons
from remediator.engine.intake.digest_plan import keyed, plan_digest
from remediator.store.records import EpisodeState, JournalEntry, WorkKind

AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
START = "2026-12-03T07:50:00Z"


def _alert(name: str, status: str = "firing", ends: str | None = None) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": "KafkaLagHigh", "deployment": name, "namespace": "shop"},
        "annotations": {},
        "startsAt": START,
        "endsAt": ends or "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"fp{name}",
    }
    return alert


def _notification(*alerts: dict[str, Any]) -> NotificationData:
    body = {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "remediator",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": list(alerts),
    }
    return validate_notification(json.dumps(body).encode())


def _slice(*notifications: NotificationData) -> Any:
    return keyed(
        [
            (JournalEntry(f"n{i}", i, AT, b"{}"), data)
            for i, data in enumerate(notifications, start=1)
        ]
    )


def only_a(labels: Any) -> bool:
    return bool(labels["deployment"] == "a")


def test_new_firing_alerts_are_dispatched_or_decided_on_arrival() -> None:
    slice_ = _slice(_notification(_alert("a"), _alert("b")))
    plan = plan_digest(slice_, {}, only_a, AT)
    [a, b] = plan.new
    assert (a.wanted, b.wanted) == (True, False)
    [result] = plan.results
    assert [(w.kind, w.episode_id) for w in result.work] == [(WorkKind.FIRING, a.id)]
    assert plan.decisions == [(b.id, "no_playbook", reasons.NO_PLAYBOOK)]
    assert result.new_episodes == 2 and plan.notifications[0].new_episodes == 2


def test_resolving_closes_what_ran_and_decides_what_did_not() -> None:
    first = plan_digest(_slice(_notification(_alert("a"), _alert("b"))), {}, only_a, AT)
    known = {e.id: EpisodeState("firing", no_work=not e.wanted) for e in first.new}
    ends = (AT - timedelta(minutes=1)).isoformat()
    slice_ = _slice(_notification(_alert("a", "resolved", ends), _alert("b", "resolved", ends)))
    plan = plan_digest(slice_, known, only_a, AT)
    [a, b] = plan.resolved
    assert (a.handled, b.handled) == (False, True)
    assert a.resolved_at == AT - timedelta(minutes=1)
    assert [w.kind for w in plan.results[0].work] == [WorkKind.RESOLVED]
    assert plan.decisions == [(b.id, "resolved", reasons.RESOLVED)]
    assert plan.new == []


def test_re_sends_are_counted_without_work() -> None:
    first = plan_digest(_slice(_notification(_alert("a"))), {}, None, AT)
    known = {first.new[0].id: EpisodeState("firing", no_work=False)}
    plan = plan_digest(
        _slice(_notification(_alert("a")), _notification(_alert("a"))), known, None, AT
    )
    assert [r.id for r in plan.resent] == [first.new[0].id] * 2
    assert all(r.work == [] for r in plan.results) and plan.new == []


def test_a_slice_sees_its_own_changes() -> None:
    # New and resolved within one slice: one episode, opened then resolved, the second a
    # resolution (not a second new episode), whose work closes what the first dispatched.
    slice_ = _slice(_notification(_alert("a")), _notification(_alert("a", "resolved")))
    plan = plan_digest(slice_, {}, None, AT)
    assert len(plan.new) == 1 and len(plan.resolved) == 1
    assert [w.kind for r in plan.results for w in r.work] == [WorkKind.FIRING, WorkKind.RESOLVED]


def test_an_alert_that_arrives_resolved_is_closed_on_arrival() -> None:
    # endsAt before startsAt (a broken sender): resolved when it arrived.
    plan = plan_digest(
        _slice(_notification(_alert("a", "resolved", "2026-12-03T07:00:00Z"))), {}, None, AT
    )
    [episode] = plan.new
    assert episode.resolved_at == AT and not episode.wanted
    assert plan.results[0].work == [] and plan.results[0].new_episodes == 0
