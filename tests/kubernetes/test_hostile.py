"""Crafted and broken alerts: every playbook refuses, records why, escalates, and touches
nothing but the one object a valid alert names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from remediator_testing.fakes import FakePagerDuty
from tests.governance.helpers import PD_KEY, delivered, paging
from tests.kubernetes.helpers import Cluster

PARAMS = {"scale-on-lag": {"partitions": 12}}


@dataclass(frozen=True)
class Case:
    module: str
    alertname: str
    label: str  # the label naming the object
    name: str  # a valid value for it
    setup: Callable[[Cluster, str], Awaitable[None]]  # creates the object in a namespace

    @property
    def params(self) -> dict[str, dict[str, int]]:
        return PARAMS if self.module == "scale_on_lag" else {}

    def labels(self, namespace: str = "shop", **override: str) -> dict[str, str]:
        found = {
            "alertname": self.alertname,
            "namespace": namespace,
            self.label: self.name,
            "severity": "critical",
            "consumergroup": "ingest",
            "topic": "ticks",
            **override,
        }
        return {k: v for k, v in found.items() if v != ""}


async def deployment(cluster: Cluster, namespace: str) -> None:
    cluster.emu.add_deployment(namespace, "api", replicas=2, image="api:1")


async def two_revisions(cluster: Cluster, namespace: str) -> None:
    await deployment(cluster, namespace)
    await cluster.emu.wait_rolled_out(namespace, "api")
    image = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    await cluster.patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/api", image)
    await cluster.emu.wait_rolled_out(namespace, "api")


async def statefulset(cluster: Cluster, namespace: str) -> None:
    cluster.emu.add_statefulset(namespace, "redis", replicas=2)


async def crash_looping(cluster: Cluster, namespace: str) -> None:
    await deployment(cluster, namespace)
    cluster.emu.set_template_health(namespace, "api", image="api:1", healthy=False)
    await cluster.emu.wait_for(
        lambda: all(p["status"].get("containerStatuses") for p in cluster.emu.pods(namespace)),
        what="pods started",
    )


CASES = [
    Case("restart_on_down", "ServiceDown", "deployment", "api", deployment),
    Case("rollback_on_error_spike", "HighErrorRate", "deployment", "api", two_revisions),
    Case("scale_on_lag", "KafkaLagHigh", "deployment", "api", deployment),
    Case("scale_on_lag", "HighResponseTime", "deployment", "api", deployment),
    Case("statefulset_rolling_restart", "RedisCacheDown", "statefulset", "redis", statefulset),
    Case("restart_crashloop", "PodCrashLooping", "pod", "", crash_looping),
]
IDS = [c.alertname for c in CASES]


def pod_name(cluster: Cluster, case: Case, namespace: str) -> str:
    if case.label != "pod":
        return case.name
    return str(cluster.emu.pods(namespace, "app=api")[0]["metadata"]["name"])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is missing or empty"),
        ("../kube-system/coredns", "is not a valid Kubernetes name"),
        ("API", "is not a valid Kubernetes name"),
        ("a" * 254, "is not a valid Kubernetes name"),
        ("api,web", "is not a valid Kubernetes name"),
    ],
)
@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_bad_object_label_is_refused_before_any_call(
    cluster: Cluster, case: Case, value: str, reason: str
) -> None:
    await case.setup(cluster, "shop")
    await cluster.start(case.module, params=case.params)
    cluster.emu.requests.clear()

    outcome = await cluster.fire(case.labels(**{case.label: value}))

    assert outcome.runs == []
    [refusal] = [d for d in outcome.decisions if d.kind == "refused"]
    assert refusal.reason.startswith("no valid target: label ") and reason in refusal.reason
    assert len(outcome.escalations) == 1
    assert cluster.emu.requests == []


@pytest.mark.parametrize("namespace", ["", "kube-system/..", "Shop"])
@pytest.mark.parametrize("case", CASES[:1] + CASES[-2:], ids=["deployment", "sts", "pod"])
async def test_a_bad_namespace_label_is_refused(
    cluster: Cluster, case: Case, namespace: str
) -> None:
    await case.setup(cluster, "shop")
    await cluster.start(case.module, params=case.params)
    cluster.emu.requests.clear()

    outcome = await cluster.fire(
        case.labels(namespace, **{case.label: pod_name(cluster, case, "shop")})
    )

    assert outcome.runs == [] and cluster.emu.requests == []
    assert any("label 'namespace'" in d.reason for d in outcome.decisions)


KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet", "pod": "Deployment"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_kube_system_is_refused_before_any_call(cluster: Cluster, case: Case) -> None:
    """The scope is decided when the target is resolved: no playbook code runs, nothing in
    kube-system is even read, and the refusal is recorded and escalated."""
    await case.setup(cluster, "kube-system")
    await cluster.start(case.module, params=case.params)
    cluster.emu.requests.clear()
    name = pod_name(cluster, case, "kube-system")

    outcome = await cluster.fire(case.labels("kube-system", **{case.label: name}))

    assert outcome.runs == [] and outcome.actions == [] and outcome.calls == []
    workload = "api" if case.label == "pod" else case.name
    key = f"{KINDS[case.label]}/kube-system/{workload}"
    [refusal] = [d for d in outcome.decisions if d.kind == "refused"]
    assert refusal.reason == f"out_of_scope: {key}: namespace 'kube-system' is denied"
    [escalation] = outcome.escalations
    assert escalation.details["refusal"] == "out_of_scope"
    assert escalation.details["target"] == key
    assert cluster.emu.requests == []


async def test_an_allow_list_refuses_every_other_namespace_before_any_call(
    cluster: Cluster,
) -> None:
    await deployment(cluster, "default")
    guards = {"blast_radius": {"allow_namespaces": ["shop", "team-*"]}}
    await cluster.start("restart_on_down", guards=guards)
    cluster.emu.requests.clear()

    outcome = await cluster.fire(CASES[0].labels("default"))

    assert outcome.runs == [] and cluster.emu.requests == []
    [refusal] = [d for d in outcome.decisions if d.kind == "refused"]
    assert refusal.reason == (
        "out_of_scope: Deployment/default/api: namespace 'default' is not in the allow list"
    )


async def test_crash_loops_in_kube_system_read_nothing_there_and_page_once(
    cluster: Cluster,
) -> None:
    """Issue 14, item 7: PodCrashLooping for Ready pods of kube-system/coredns ran the
    playbook, read objects in kube-system and ended as a silent noop. Now each alert is refused
    before anything is read, and the refusals of that kind are one page."""
    cluster.emu.add_deployment("kube-system", "coredns", replicas=3, image="coredns:1.11")
    await cluster.emu.wait_rolled_out("kube-system", "coredns")
    pods = sorted(p["metadata"]["name"] for p in cluster.emu.pods("kube-system"))
    async with FakePagerDuty(routing_key=PD_KEY) as pagerduty:
        await cluster.start("restart_crashloop", extra={"escalation": paging(pagerduty.url)})
        cluster.emu.requests.clear()

        outcomes = [
            await cluster.fire(
                {
                    "alertname": "PodCrashLooping",
                    "namespace": "kube-system",
                    "pod": pod,
                    "container": "coredns",
                    "severity": "critical",
                },
                minutes=n,
            )
            for n, pod in enumerate(pods)
        ]
        assert cluster.daemon is not None
        await delivered(cluster.daemon)

        events = pagerduty.events
    assert cluster.emu.requests == []
    for outcome in outcomes:
        assert outcome.runs == []
        [refusal] = [d for d in outcome.decisions if d.kind == "refused"]
        assert refusal.reason == (
            "out_of_scope: Deployment/kube-system/coredns: namespace 'kube-system' is denied"
        )
    [page] = events
    assert page["dedup_key"] == outcomes[0].episode.id
    assert "out_of_scope" in page["payload"]["summary"]
    later = [e for o in outcomes[1:] for e in o.escalations]
    assert len(later) == 2 and all(e.details["group"] == outcomes[0].episode.id for e in later)
    assert all(e.details["channels"] == [] for e in later)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_target_that_does_not_exist_is_refused(cluster: Cluster, case: Case) -> None:
    await case.setup(cluster, "shop")
    await cluster.start(case.module, params=case.params)
    before = len(cluster.changes())
    missing = "gone-5d8c7b6f4-zzzzz" if case.label == "pod" else "gone"

    outcome = await cluster.fire(case.labels(**{case.label: missing}))

    kind = {"deployment": "Deployment", "statefulset": "StatefulSet", "pod": "Pod"}[case.label]
    assert outcome.run.state == "refused"
    assert outcome.run.error == f"target: {kind}/shop/{missing} does not exist"
    assert outcome.actions == [] and cluster.changes()[before:] == []
    assert len(outcome.escalations) == 1


async def test_a_paused_deployment_is_not_rolled_back(cluster: Cluster) -> None:
    await two_revisions(cluster, "shop")
    await cluster.patch("/apis/apps/v1/namespaces/shop/deployments/api", {"spec": {"paused": True}})
    await cluster.start("rollback_on_error_spike")
    before = len(cluster.changes())

    outcome = await cluster.fire(CASES[1].labels())

    assert outcome.run.state == "refused"
    assert outcome.run.error == (
        "precondition: Deployment/shop/api is paused; resume it before rolling back"
    )
    assert cluster.changes()[before:] == []
