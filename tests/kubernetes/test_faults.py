"""A flaky API server: transient failures are retried, then recorded as a failure and
escalated; conflicts re-read; nothing crashes the daemon."""

from __future__ import annotations

from tests.kubernetes.helpers import Cluster, labels

LAG = {"scale-on-lag": {"partitions": 12}}
SCALE = r"/deployments/consumer/scale$"


def lag(deployment: str = "consumer") -> dict[str, str]:
    return labels("KafkaLagHigh", deployment=deployment, consumergroup="ingest", topic="ticks")


def statuses(cluster: Cluster, method: str, path_end: str) -> list[int | None]:
    return [
        r.status for r in cluster.emu.requests if r.method == method and r.path.endswith(path_end)
    ]


async def start(cluster: Cluster, **kube: object) -> None:
    cluster.emu.add_deployment("shop", "consumer", replicas=2)
    await cluster.start("scale_on_lag", params=LAG, kube=kube or None)


async def test_two_server_errors_then_success_acts(cluster: Cluster) -> None:
    await start(cluster)
    cluster.emu.faults.add(method="PATCH", path_regex=SCALE, status=500, times=2)

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "acted", outcome.run.error
    assert statuses(cluster, "PATCH", "/scale") == [500, 500, 200]
    assert cluster.replicas("consumer") == 4
    assert [a.state for a in outcome.actions] == ["succeeded"]


async def test_server_errors_forever_fail_the_run_and_the_daemon_keeps_serving(
    cluster: Cluster,
) -> None:
    await start(cluster)
    cluster.emu.add_deployment("shop", "other", replicas=2)
    cluster.emu.faults.add(method="PATCH", path_regex=SCALE, status=500)

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "failed"
    error = str(outcome.run.error)
    assert error.startswith(
        "KubeUnavailable: PATCH /apis/apps/v1/namespaces/shop/deployments/consumer/scale: "
        "500 InternalError: fault injected by the emulator"
    )
    assert "(gave up after 3 attempt(s))" in error
    [action] = outcome.actions
    assert (action.state, action.error) == ("failed", error)
    [escalation] = outcome.escalations
    assert escalation.reason == error
    assert statuses(cluster, "PATCH", "/scale") == [500, 500, 500]
    assert cluster.replicas("consumer") == 2

    other = await cluster.fire(lag("other"), minutes=1)
    assert other.run.state == "acted" and cluster.replicas("other") == 4
    assert cluster.daemon is not None
    response = await cluster.daemon.client.get("/healthz")
    assert response.status == 200


async def test_a_conflict_rereads_and_applies_again(cluster: Cluster) -> None:
    await start(cluster)
    cluster.emu.faults.add(method="PATCH", path_regex=SCALE, status=409, times=1)

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "acted", outcome.run.error
    calls = [(r.method, r.status) for r in cluster.emu.requests if r.path.endswith("/scale")]
    assert calls == [("PATCH", 409), ("GET", 200), ("PATCH", 200)]
    assert cluster.replicas("consumer") == 4


async def test_a_dropped_connection_is_retried(cluster: Cluster) -> None:
    await start(cluster)
    cluster.emu.faults.add(method="PATCH", path_regex=SCALE, reset=True, times=1)

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "acted", outcome.run.error
    assert statuses(cluster, "PATCH", "/scale") == [None, 200]


async def test_throttling_waits_for_retry_after(cluster: Cluster) -> None:
    await start(cluster)
    cluster.emu.faults.add(
        method="GET", path_regex=r"/deployments/consumer$", status=429, retry_after=1, times=1
    )

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "acted", outcome.run.error
    assert statuses(cluster, "GET", "/deployments/consumer")[:2] == [429, 200]


async def test_a_slow_answer_times_out_and_is_retried(cluster: Cluster) -> None:
    await start(cluster, request_timeout_seconds=0.2)
    cluster.emu.faults.add(
        method="GET", path_regex=r"/deployments/consumer$", latency_s=0.5, times=1
    )

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "acted", outcome.run.error


async def test_a_refusal_is_not_retried_and_keeps_the_api_message(cluster: Cluster) -> None:
    await start(cluster)
    cluster.emu.faults.add(
        method="PATCH", path_regex=SCALE, status=403, message="remediator may not patch scale"
    )

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "failed"
    assert outcome.run.error == (
        "KubeError: PATCH /apis/apps/v1/namespaces/shop/deployments/consumer/scale: "
        "403 Forbidden: remediator may not patch scale"
    )
    assert statuses(cluster, "PATCH", "/scale") == [403]


async def test_an_unreachable_api_fails_before_acting(cluster: Cluster) -> None:
    await start(cluster)
    cluster.emu.faults.add(method="GET", path_regex=r"/deployments/consumer$", status=503)

    outcome = await cluster.fire(lag())

    assert outcome.run.state == "failed"
    assert "503" in str(outcome.run.error) and outcome.actions == []
    assert len(outcome.escalations) == 1
