"""End to end: real Prometheus and Alertmanager, the daemon in auto mode, and a world that reacts.

Each test runs one scenario of `remediator_testing.harness.scenarios` (also runnable by hand:
`.venv/bin/python bench/e2e.py`) and prints its two figures: rule firing in Prometheus ->
the daemon's action, and action -> the episode resolved.

What runs, on 127.0.0.1 only: the scenario's metrics exporter and application scrape targets,
real Prometheus 2.42 (scrape and evaluation every 1 s, alert resend delay 1 s), real
Alertmanager 0.25 (one, or an HA pair), the daemon in process with every built-in playbook,
and the Kubernetes emulator or a real PostgreSQL. Every server process is stopped by PID.

What differs from production, and nothing else:

* the rules are the real `alert_rules/*.rules.yml` with every duration divided by 60: each
  rule's `for:` (5m -> 5s, 2m -> 2s) and each range selector in its expression
  ([15m] -> [15s], [5m] -> [5s]); thresholds, matchers, aggregations and labels are identical
  (`tests/e2e/test_config.py` proves the transformation changes exactly that);
* the Alertmanager config is `alert_rules/alertmanager.example.yml` with only: the
  `remediator` receiver's URL (the daemon's loopback URL) and `credentials_file` (a temp file
  holding the daemon's token); the human receivers `pagerduty` and `slack-warnings` made
  webhooks to a loopback fake (and `global.slack_api_url_file` dropped with Slack); every
  `group_wait`, `group_interval` and `repeat_interval` set to 1s;
* playbook parameters shortened where a scenario says so (pg-idle-in-transaction's
  `idle_threshold_seconds` 2 instead of 300; scale-on-lag's cool-down 3 s);
* the daemon pages a FakePagerDuty on loopback.
"""

from __future__ import annotations

import pytest

from remediator_testing.harness.scenarios import (
    STORM_SIZE,
    STORM_THRESHOLD,
    Result,
    crashloop_rollback,
    ha_resends,
    kafka_lag,
    pool_exhaustion,
    service_down_storm,
)


def report(result: Result) -> None:
    for figures in result.figures:
        print(figures.line())
    print(f"{result.scenario}: {result.seconds:.1f}s")


async def test_pool_exhaustion_terminates_idle_in_transaction_and_resolves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await pool_exhaustion()
    with capsys.disabled():
        report(result)
    episode = result.episode("DatabaseConnectionPoolExhausted")
    [run] = result.runs[episode.id]
    assert run.playbook == "pg-idle-in-transaction" and run.state == "acted", run.error
    [action] = result.actions[episode.id]
    assert action.state == "succeeded"
    assert action.summary.startswith("terminate 4 session(s) idle in transaction")
    assert result.facts["sessions_left"] == 0
    assert episode.status == "resolved"
    [figures] = result.figures
    assert figures.fired_at is not None and figures.acted_at is not None
    assert figures.fired_at <= figures.acted_at <= episode.resolved_at  # type: ignore[operator]
    assert result.pages == []  # healing is silent


async def test_ha_pair_and_resends_make_one_action(capsys: pytest.CaptureFixture[str]) -> None:
    result = await ha_resends()
    with capsys.disabled():
        report(result)
        print(f"  {result.facts}")
    episode = result.episode("ServiceDown")
    assert all(count >= 1 for count in result.facts["deliveries"])  # both members delivered
    # The only alert routed to the daemon: the first, the duplicate, re-sends, the resolution.
    assert result.facts["daemon_notifications"] >= 4
    [run] = result.runs[episode.id]
    assert run.playbook == "restart-on-down" and run.state == "acted", run.error
    [action] = result.actions[episode.id]
    assert action.summary == "rollout restart Deployment/shop/technical-analysis"
    assert len(result.facts["restart_patches"]) == 1
    assert episode.status == "resolved"
    assert result.pages == []


async def test_a_storm_opens_the_breaker_restarts_nothing_and_pages_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await service_down_storm()
    with capsys.disabled():
        report(result)
    assert len(result.episodes) == STORM_SIZE
    assert result.facts["breaker"] is not None
    # Alertmanager sends one notification per deployment: the breaker opens on the arrival that
    # crosses the threshold, so its reason counts the targets seen by then (more than the
    # threshold, at most the whole storm).
    opened_on = int(result.facts["breaker"].reason.split(" distinct targets alerting")[0])
    assert STORM_THRESHOLD < opened_on <= STORM_SIZE, result.facts["breaker"].reason
    assert result.facts["restarted"] == [] and result.facts["mutations"] == []
    # Decided on each notification before dispatch: at most the threshold were dispatched
    # (and refused by the breaker at their action), every other alert was held without a run.
    ran = [e for e in result.episodes if result.runs[e.id]]
    assert len(ran) <= STORM_THRESHOLD
    assert sorted(result.facts["held"]) == sorted(e.id for e in result.episodes if e not in ran)
    for episode in ran:
        [run] = result.runs[episode.id]
        assert run.state == "refused" and (run.error or "").startswith("storm_breaker: open")
        assert all(a.state == "refused" for a in result.actions[episode.id])
    [page] = result.pages
    assert page["event_action"] == "trigger" and "storm breaker open" in page["payload"]["summary"]


async def test_kafka_lag_scales_up_resolves_and_scales_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await kafka_lag()
    with capsys.disabled():
        report(result)
    episode = result.episode("KafkaLagHigh")
    [run] = result.runs[episode.id]
    assert run.playbook == "scale-on-lag" and run.state == "acted", run.error
    assert result.facts["scaled_to"] == 4
    assert result.facts["replicas_after"] == 2
    assert episode.status == "resolved"
    assert result.pages == []


async def test_a_crash_looping_rollout_is_rolled_back_and_resolves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = await crashloop_rollback()
    with capsys.disabled():
        report(result)
    episode = result.episode("PodCrashLooping")
    assert episode.labels["deployment"] == "api"
    assert episode.labels["pod"] in result.facts["crashing_pods"]
    [run] = result.runs[episode.id]
    assert run.playbook == "restart-crashloop" and run.state == "acted", run.error
    [action] = result.actions[episode.id]
    assert action.summary.startswith("roll back Deployment/shop/api from revision 2 (api:2)")
    assert result.facts["images"] == {"api:1"}
    assert episode.status == "resolved"
