"""Guards hold across replicas: decided from the shared record, atomically.

Three replicas receive the same alerts at the same moment and race for the last slots of a rate
limit and for the concurrency cap; whichever wins, the limit is never exceeded, because each
replica's check and intent are taken under one lock in PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from remediator_testing.alerts import alert, notification
from tests.ha.conftest import HA, TOKEN, gather_posts
from tests.kubernetes.helpers import START, labels

NAMES = ["api", "web", "search", "cart", "auth"]


def restarts(ha: HA) -> list[Any]:
    return [
        r
        for r in ha.emu.requests
        if r.method == "PATCH" and r.path.startswith("/apis/apps/v1/namespaces/shop/deployments/")
    ]


async def all_down_at_once(ha: HA, **overrides: Any) -> list[Any]:
    """Five Deployments down; three replicas each get all five alerts at the same moment.
    Returns the runs once every one finished and nothing is left to do."""
    for name in NAMES:
        ha.emu.add_deployment("shop", name, replicas=1, image=f"{name}:1")
    for name in NAMES:
        await ha.emu.wait_rolled_out("shop", name)
    group = await ha.start(3, **overrides)
    payload = notification(
        [alert(labels("ServiceDown", deployment=name, job=name), starts_at=START) for name in NAMES]
    )
    statuses = await gather_posts([member.post(payload, token=TOKEN) for member in group])
    assert statuses == [200, 200, 200]

    async def finished() -> bool:
        rows = await ha.query("SELECT state FROM runs")
        return len(rows) == len(NAMES) and all(row["state"] != "running" for row in rows)

    await ha.until("a run per episode, finished", finished)
    await ha.until("every replica to have nothing left to do", lambda: ha.settled(group))
    return await ha.query("SELECT id, state, error FROM runs ORDER BY id")


async def test_replicas_racing_for_the_last_rate_limit_slots_never_exceed_it(ha: HA) -> None:
    runs = await all_down_at_once(
        ha, guards={"rate_limits": {"per_playbook": {"max_actions": 2, "window_seconds": 3600}}}
    )

    assert len(restarts(ha)) == 2, [(r.method, r.path) for r in ha.emu.requests]
    assert sorted(run["state"] for run in runs) == ["acted"] * 2 + ["refused"] * 3, runs
    actions = await ha.query("SELECT state, count(*) AS n FROM actions GROUP BY state")
    # The refused runs record the call they were refused (not made).
    assert {row["state"]: row["n"] for row in actions} == {"succeeded": 2, "refused": 3}


async def test_the_concurrency_cap_holds_across_replicas(ha: HA) -> None:
    # Each restart's PATCH takes a while to answer: actions overlap unless the cap is shared.
    ha.emu.faults.add(path_regex=r"/deployments/[a-z]+$", method="PATCH", latency_s=0.3)
    runs = await all_down_at_once(ha, guards={"concurrency": {"max_in_flight": 1}})

    # Each waits for room (the in-flight count is the shared record's), then acts.
    assert [run["state"] for run in runs] == ["acted"] * len(NAMES), runs
    rows = await ha.query(
        "SELECT intended_at, finished_at FROM actions WHERE state = 'succeeded' "
        "ORDER BY intended_at"
    )
    assert len(rows) == len(NAMES)
    spans: list[tuple[datetime, datetime]] = [(r["intended_at"], r["finished_at"]) for r in rows]
    for (_, previous_end), (start, _) in itertools.pairwise(spans):
        assert start >= previous_end, spans
    assert len(restarts(ha)) == len(rows)
