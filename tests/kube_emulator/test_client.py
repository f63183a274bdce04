"""The kubernetes.aio client, unmodified, against the emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException

from remediator_testing.kube import KubeEmulator, WatchEvent


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _ready_pods(emu: KubeEmulator, namespace: str, selector: str) -> int:
    return sum(1 for pod in emu.pods(namespace, selector) if _ready(pod))


def _body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


async def test_read_and_patch_scale_converges_pods(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=3, image="api:1")
    apps = client.AppsV1Api(api)

    scale = await apps.read_namespaced_deployment_scale("api", "shop")
    assert scale.spec.replicas == 3
    assert scale.status.selector == "app=api"

    patched = await apps.patch_namespaced_deployment_scale("api", "shop", {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    await emu.wait_for(lambda: _ready_pods(emu, "shop", "app=api") == 5, what="5 ready pods")
    await emu.wait_rolled_out("shop", "api")
    deployment = await apps.read_namespaced_deployment("api", "shop")
    assert deployment.status.ready_replicas == 5
    assert deployment.status.observed_generation == deployment.metadata.generation


async def test_strategic_merge_of_template_annotations_rolls_out_revision_2(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=2, image="api:1")
    await emu.wait_rolled_out("shop", "api")
    apps = client.AppsV1Api(api)
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"example.com/restarted": "now"}},
                "spec": {"containers": [{"name": "api", "env": [{"name": "MODE", "value": "x"}]}]},
            }
        }
    }
    patched = await apps.patch_namespaced_deployment("api", "shop", patch)

    assert patched.metadata.generation == 2
    container = patched.spec.template.spec.containers[0]
    assert container.image == "api:1"  # merged by name, not replaced
    assert container.env[0].name == "MODE"
    await emu.wait_rolled_out("shop", "api")
    replicasets = emu.list_objects("apps/v1", "replicasets", "shop")
    revisions = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs for rs in replicasets
    }
    assert set(revisions) == {"1", "2"}
    assert revisions["1"]["spec"]["replicas"] == 0
    new_rs = revisions["2"]
    assert new_rs["metadata"]["ownerReferences"][0]["name"] == "api"
    assert new_rs["spec"]["template"]["metadata"]["annotations"] == {"example.com/restarted": "now"}
    for pod in emu.pods("shop", "app=api"):
        assert pod["metadata"]["annotations"] == {"example.com/restarted": "now"}
        assert pod["metadata"]["ownerReferences"][0]["name"] == new_rs["metadata"]["name"]
    deployment = emu.get("apps/v1", "deployments", "shop", "api")
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


async def test_replace_and_patch_with_stale_resource_version_conflict(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=1)
    apps = client.AppsV1Api(api)
    stale = await apps.read_namespaced_deployment("api", "shop")
    await apps.patch_namespaced_deployment("api", "shop", {"metadata": {"labels": {"x": "1"}}})

    stale.spec.replicas = 4
    with pytest.raises(ApiException) as replaced:
        await apps.replace_namespaced_deployment("api", "shop", stale)
    assert replaced.value.status == 409
    assert _body(replaced.value)["reason"] == "Conflict"

    stale_rv = stale.metadata.resource_version
    with pytest.raises(ApiException) as patched:
        await apps.patch_namespaced_deployment(
            "api", "shop", {"metadata": {"resourceVersion": stale_rv}, "spec": {"replicas": 4}}
        )
    assert patched.value.status == 409

    fresh = await apps.read_namespaced_deployment("api", "shop")
    fresh.spec.replicas = 4
    replaced_ok = await apps.replace_namespaced_deployment("api", "shop", fresh)
    assert replaced_ok.spec.replicas == 4
    assert int(replaced_ok.metadata.resource_version) > int(fresh.metadata.resource_version)


async def test_eviction_allowed_then_forbidden_by_pdb(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=3)
    emu.add_pdb("shop", "api-pdb", selector={"app": "api"}, min_available=2)
    await emu.wait_rolled_out("shop", "api")
    await emu.wait_for(
        lambda: (
            emu.get("policy/v1", "poddisruptionbudgets", "shop", "api-pdb")["status"][
                "disruptionsAllowed"
            ]
            == 1
        ),
        what="one allowed disruption",
    )
    core = client.CoreV1Api(api)
    first, second = (p["metadata"]["name"] for p in emu.pods("shop", "app=api")[:2])

    def eviction(name: str) -> client.V1Eviction:
        return client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="shop"))

    await core.create_namespaced_pod_eviction(first, "shop", eviction(first))
    assert first not in {p["metadata"]["name"] for p in emu.pods("shop")}
    assert emu.requests[-1].status == 201

    # The replacement is not Ready yet: evicting another would leave fewer than 2 healthy.
    with pytest.raises(ApiException) as forbidden:
        await core.create_namespaced_pod_eviction(second, "shop", eviction(second))
    assert forbidden.value.status == 429
    body = _body(forbidden.value)
    assert body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert second in {p["metadata"]["name"] for p in emu.pods("shop")}

    pdb = await client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("api-pdb", "shop")
    assert pdb.status.desired_healthy == 2
    assert pdb.status.expected_pods == 3
    await emu.wait_for(lambda: _ready_pods(emu, "shop", "app=api") == 3, what="replacement ready")


async def test_crash_looping_template_stalls_rollout_until_healthy(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=3, image="api:1", progress_deadline_seconds=1)
    await emu.wait_rolled_out("shop", "api")
    emu.set_template_health("shop", "api", image="api:2", healthy=False)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    await apps.patch_namespaced_deployment("api", "shop", patch)

    def crashing() -> list[dict[str, Any]]:
        return [
            c
            for pod in emu.pods("shop", "app=api")
            for c in pod["status"].get("containerStatuses") or []
            if c["image"] == "api:2"
        ]

    await emu.wait_for(
        lambda: any(c["restartCount"] >= 2 for c in crashing()), what="restarts to grow"
    )
    pods = await core.list_namespaced_pod("shop", label_selector="app=api")
    bad = [p for p in pods.items if p.spec.containers[0].image == "api:2"]
    good = [p for p in pods.items if p.spec.containers[0].image == "api:1"]
    assert len(bad) == 1  # maxSurge 25% of 3 -> one new pod, and no further progress
    assert bad[0].status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert not bad[0].status.container_statuses[0].ready
    assert len(good) == 3
    assert all(p.status.container_statuses[0].ready for p in good)

    def progressing_reason() -> str:
        d = emu.get("apps/v1", "deployments", "shop", "api")
        return next(c["reason"] for c in d["status"]["conditions"] if c["type"] == "Progressing")

    await emu.wait_for(
        lambda: progressing_reason() == "ProgressDeadlineExceeded",
        timeout_s=3,
        what="progress deadline",
    )
    deployment = await apps.read_namespaced_deployment("api", "shop")
    condition = next(c for c in deployment.status.conditions if c.type == "Progressing")
    assert condition.status == "False"
    assert deployment.status.available_replicas == 3

    emu.set_template_health("shop", "api", image="api:2", healthy=True)
    await emu.wait_rolled_out("shop", "api")
    images = {p["spec"]["containers"][0]["image"] for p in emu.pods("shop", "app=api")}
    assert images == {"api:2"}


async def test_healthy_template_pods_become_ready(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.add_deployment("shop", "web", replicas=2, image="web:1")
    pods = emu.pods("shop", "app=web")
    assert len(pods) == 2
    assert all(p["status"]["phase"] == "Pending" for p in pods)
    await emu.wait_for(lambda: _ready_pods(emu, "shop", "app=web") == 2, what="ready pods")
    listed = await client.CoreV1Api(api).list_namespaced_pod("shop", label_selector="app=web")
    for pod in listed.items:
        assert pod.status.phase == "Running"
        ready = next(c for c in pod.status.conditions if c.type == "Ready")
        assert ready.status == "True"
        assert pod.status.container_statuses[0].state.running is not None
        assert pod.metadata.labels["app"] == "web"
        assert "pod-template-hash" in pod.metadata.labels
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"


async def test_statefulset_rolling_update_replaces_highest_ordinal_first(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_namespace("data")
    emu.add_statefulset("data", "redis", replicas=3, image="redis:7")
    await emu.wait_for(lambda: _ready_pods(emu, "data", "app=redis") == 3, what="3 ready pods")
    apps = client.AppsV1Api(api)
    before = await apps.read_namespaced_stateful_set("redis", "data")
    assert before.status.current_revision == before.status.update_revision

    deletions: list[tuple[str, int]] = []

    def record(event: WatchEvent) -> None:
        if event.type == "DELETED" and event.rt.plural == "pods":
            deletions.append((event.obj["metadata"]["name"], _ready_pods(emu, "data", "app=redis")))

    emu.store.listeners.append(record)
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis:8"}]}}}
    }
    await apps.patch_namespaced_stateful_set("redis", "data", patch)

    def updated() -> bool:
        sts = emu.get("apps/v1", "statefulsets", "data", "redis")
        status = sts["status"]
        return bool(
            status["observedGeneration"] == sts["metadata"]["generation"]
            and status["currentRevision"] == status["updateRevision"]
            and status.get("readyReplicas") == 3
        )

    await emu.wait_for(updated, what="rolling update to finish")
    assert [name for name, _ in deletions] == ["redis-2", "redis-1", "redis-0"]
    # Each pod was deleted only while its two siblings were Ready.
    assert [ready for _, ready in deletions] == [2, 2, 2]
    after = await apps.read_namespaced_stateful_set("redis", "data")
    assert after.status.update_revision != before.status.update_revision
    assert {p["spec"]["containers"][0]["image"] for p in emu.pods("data")} == {"redis:8"}


async def test_raising_hpa_min_replicas_scales_the_deployment(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=2)
    emu.add_hpa("shop", "api", min_replicas=2, max_replicas=10)
    autoscaling = client.AutoscalingV2Api(api)
    hpa = await autoscaling.read_namespaced_horizontal_pod_autoscaler("api", "shop")
    assert hpa.spec.scale_target_ref.name == "api"

    await autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "api", "shop", {"spec": {"minReplicas": 5}}
    )
    await emu.wait_for(lambda: _ready_pods(emu, "shop", "app=api") == 5, what="5 ready pods")
    assert emu.get("apps/v1", "deployments", "shop", "api")["spec"]["replicas"] == 5
    hpa = await autoscaling.read_namespaced_horizontal_pod_autoscaler("api", "shop")
    assert hpa.status.desired_replicas == 5


async def test_lease_crud(emu: KubeEmulator, api: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(api)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="remediator", namespace="shop"),
        spec=client.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=15),
    )
    created = await leases.create_namespaced_lease("shop", body)
    assert created.spec.holder_identity == "pod-a"

    created.spec.holder_identity = "pod-b"
    replaced = await leases.replace_namespaced_lease("remediator", "shop", created)
    assert replaced.spec.holder_identity == "pod-b"
    with pytest.raises(ApiException) as stale:
        await leases.replace_namespaced_lease("remediator", "shop", created)
    assert stale.value.status == 409

    with pytest.raises(ApiException) as exists:
        await leases.create_namespaced_lease("shop", body)
    assert exists.value.status == 409
    assert _body(exists.value)["reason"] == "AlreadyExists"

    patched = await leases.patch_namespaced_lease(
        "remediator", "shop", {"spec": {"leaseTransitions": 1}}
    )
    assert patched.spec.lease_transitions == 1
    listed = await leases.list_namespaced_lease("shop")
    assert [lease.metadata.name for lease in listed.items] == ["remediator"]
    await leases.delete_namespaced_lease("remediator", "shop")
    with pytest.raises(ApiException) as gone:
        await leases.read_namespaced_lease("remediator", "shop")
    assert gone.value.status == 404


async def test_not_found_is_a_status_object(emu: KubeEmulator, api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as missing:
        await client.AppsV1Api(api).read_namespaced_deployment("nope", "shop")
    assert missing.value.status == 404
    assert _body(missing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": 404,
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
    }
    # Listing in a missing namespace is an empty list on a real apiserver, not an error.
    listed = await client.CoreV1Api(api).list_namespaced_pod("nowhere")
    assert listed.items == []


async def test_fault_injection_500_then_success(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.add_deployment("shop", "api", replicas=1)
    apps = client.AppsV1Api(api)
    fault = emu.faults.add(method="PATCH", path_regex=r"/deployments/api$", status=500, times=1)
    patch = {"spec": {"replicas": 2}}
    with pytest.raises(ApiException) as failed:
        await apps.patch_namespaced_deployment("api", "shop", patch)
    assert failed.value.status == 500
    assert _body(failed.value)["reason"] == "InternalError"
    assert emu.get("apps/v1", "deployments", "shop", "api")["spec"]["replicas"] == 1

    patched = await apps.patch_namespaced_deployment("api", "shop", patch)
    assert patched.spec.replicas == 2
    assert fault.hits == 1
    assert [r.status for r in emu.requests if r.method == "PATCH"] == [500, 200]


async def test_kubeconfig_loads_with_the_client_config_loader(
    emu: KubeEmulator, tmp_path: Path
) -> None:
    configuration = client.Configuration()
    path = emu.kubeconfig(tmp_path / "kubeconfig")
    await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == emu.url
    async with client.ApiClient(configuration) as api_client:
        namespaces = await client.CoreV1Api(api_client).list_namespace()
    assert {"default", "kube-system", "shop"} <= {n.metadata.name for n in namespaces.items}


async def test_lease_times_are_stored_as_micro_time(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    acquired = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader", namespace="shop"),
        spec=client.V1LeaseSpec(holder_identity="a", acquire_time=acquired, renew_time=acquired),
    )
    lease = await client.CoordinationV1Api(api).create_namespaced_lease("shop", body)
    assert lease.spec.renew_time == acquired
    stored = emu.get("coordination.k8s.io/v1", "leases", "shop", "leader")["spec"]
    assert stored["acquireTime"] == "2030-01-02T03:04:05.678901Z"


async def test_crash_looping_pod_can_be_evicted_while_the_budget_is_healthy(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=3, image="api:1")
    emu.add_pdb("shop", "api-pdb", selector={"app": "api"}, min_available=3)
    await emu.wait_rolled_out("shop", "api")
    emu.set_template_health("shop", "api", image="api:2", healthy=False)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    await client.AppsV1Api(api).patch_namespaced_deployment("api", "shop", patch)

    def crashing() -> list[str]:
        return [
            p["metadata"]["name"]
            for p in emu.pods("shop", "app=api")
            if "CrashLoopBackOff" in json.dumps(p["status"].get("containerStatuses"))
        ]

    await emu.wait_for(lambda: len(crashing()) == 1, what="a crash-looping pod")
    budget = emu.get("policy/v1", "poddisruptionbudgets", "shop", "api-pdb")["status"]
    # Four pods, but the budget counts the Deployment's scale, not the surge pod.
    assert (budget["expectedPods"], budget["currentHealthy"], budget["disruptionsAllowed"]) == (
        3,
        3,
        0,
    )
    core = client.CoreV1Api(api)
    healthy = next(p["metadata"]["name"] for p in emu.pods("shop", "app=api") if _ready(p))
    with pytest.raises(ApiException) as forbidden:
        await core.create_namespaced_pod_eviction(
            healthy, "shop", client.V1Eviction(metadata=client.V1ObjectMeta(name=healthy))
        )
    assert forbidden.value.status == 429
    # Unhealthy pods may go as long as the budget itself is met (IfHealthyBudget).
    victim = crashing()[0]
    await core.create_namespaced_pod_eviction(
        victim, "shop", client.V1Eviction(metadata=client.V1ObjectMeta(name=victim))
    )
    assert victim not in {p["metadata"]["name"] for p in emu.pods("shop")}
    await emu.wait_for(
        lambda: len(crashing()) == 1 and victim not in crashing(), what="the pod to be replaced"
    )


async def test_pdb_with_max_unavailable(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.add_deployment("shop", "api", replicas=4)
    emu.add_pdb("shop", "api-pdb", selector={"app": "api"}, max_unavailable="50%")
    await emu.wait_rolled_out("shop", "api")
    pdb = await client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("api-pdb", "shop")
    assert (pdb.status.desired_healthy, pdb.status.disruptions_allowed) == (2, 2)
