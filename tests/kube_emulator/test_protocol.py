"""Protocol details beyond the happy path: watches, selectors, pausing, GC, validation."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from kubernetes.aio import client, watch
from kubernetes.aio.client.exceptions import ApiException

from remediator_testing.kube import KubeEmulator


def _pod(name: str, labels: dict[str, str]) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:1")]),
    )


def _progressing(emu: KubeEmulator, name: str) -> dict[str, Any]:
    deployment = emu.get("apps/v1", "deployments", "shop", name)
    return next(c for c in deployment["status"]["conditions"] if c["type"] == "Progressing")


async def test_watch_streams_initial_state_then_changes(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=1)
    emu.add_deployment("shop", "other", replicas=1)
    apps = client.AppsV1Api(api)
    seen: list[tuple[str, int]] = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            apps.list_namespaced_deployment,
            "shop",
            field_selector="metadata.name=api",
            timeout_seconds=5,
        ):
            seen.append((event["type"], event["object"].spec.replicas))
            if len(seen) == 1:
                await apps.patch_namespaced_deployment_scale(
                    "api", "shop", {"spec": {"replicas": 2}}
                )
            if event["object"].spec.replicas == 2:
                break
    assert seen[0] == ("ADDED", 1)
    assert seen[-1] == ("MODIFIED", 2)


async def test_watch_replays_from_a_resource_version_and_times_out(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    listed = await core.list_namespace()
    await core.patch_namespace("shop", {"metadata": {"labels": {"team": "shop"}}})
    started = time.monotonic()
    events = []
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        ):
            events.append(event)
    assert time.monotonic() - started >= 1
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("MODIFIED", "shop")]
    assert events[0]["object"].metadata.labels["team"] == "shop"


async def test_label_and_field_selectors(emu: KubeEmulator, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, labels in [
        ("web", {"tier": "web", "env": "prod"}),
        ("api", {"tier": "api", "env": "prod", "canary": "yes"}),
        ("db", {"tier": "db", "env": "dev"}),
    ]:
        await core.create_namespaced_pod("shop", _pod(name, labels))

    async def names(**selectors: str) -> list[str]:
        listed = await core.list_namespaced_pod("shop", **selectors)
        return sorted(p.metadata.name for p in listed.items)

    assert await names(label_selector="tier in (web,api)") == ["api", "web"]
    assert await names(label_selector="tier notin (web),env=prod") == ["api"]
    assert await names(label_selector="env!=prod") == ["db"]
    assert await names(label_selector="canary") == ["api"]
    assert await names(label_selector="!canary,env==prod") == ["web"]
    assert await names(field_selector="metadata.name=db") == ["db"]
    await emu.wait_for(
        lambda: all(p["status"]["phase"] == "Running" for p in emu.pods("shop")), what="running"
    )
    assert await names(field_selector="status.phase=Running,metadata.name!=web") == ["api", "db"]
    with pytest.raises(ApiException) as unsupported:
        await names(field_selector="spec.priority=1")
    assert unsupported.value.status == 400
    listed = await core.list_namespaced_pod("shop")
    assert int(listed.metadata.resource_version) >= 3


async def test_paused_deployment_changes_spec_without_rolling_out(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=2, image="api:1", paused=True)
    await emu.wait_for(lambda: len(emu.pods("shop")) == 2, what="first pods")
    apps = client.AppsV1Api(api)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}}
    patched = await apps.patch_namespaced_deployment("api", "shop", patch)
    await emu.wait_for(
        lambda: _progressing(emu, "api")["reason"] == "DeploymentPaused", what="paused condition"
    )
    deployment = emu.get("apps/v1", "deployments", "shop", "api")
    assert deployment["status"]["observedGeneration"] == patched.metadata.generation
    assert len(emu.list_objects("apps/v1", "replicasets", "shop")) == 1
    assert {p["spec"]["containers"][0]["image"] for p in emu.pods("shop")} == {"api:1"}

    await apps.patch_namespaced_deployment_scale("api", "shop", {"spec": {"replicas": 3}})
    await emu.wait_for(lambda: len(emu.pods("shop")) == 3, what="scaling while paused")

    await apps.patch_namespaced_deployment("api", "shop", {"spec": {"paused": False}})
    await emu.wait_rolled_out("shop", "api")
    assert {p["spec"]["containers"][0]["image"] for p in emu.pods("shop")} == {"api:2"}
    assert (
        emu.get("apps/v1", "deployments", "shop", "api")["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        == "2"
    )


async def test_deleting_owners_collects_dependents(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api", replicas=2)
    emu.add_namespace("data")
    emu.add_statefulset("data", "redis", replicas=1)
    # This client version returns delete responses undecoded (its spec says "object").
    status = await client.AppsV1Api(api).delete_namespaced_deployment("api", "shop")
    assert (status["kind"], status["status"]) == ("Status", "Success")
    await emu.wait_for(
        lambda: not emu.pods("shop") and not emu.list_objects("apps/v1", "replicasets", "shop"),
        what="garbage collection",
    )
    await client.CoreV1Api(api).delete_namespace("data")
    assert emu.list_objects("apps/v1", "statefulsets") == []
    assert emu.pods("data") == []


async def test_bare_pods_dry_run_and_delete(emu: KubeEmulator, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod("shop", _pod("probe", {}), dry_run="All")
    assert emu.pods("shop") == []
    created = await core.create_namespaced_pod("shop", _pod("probe", {}))
    assert created.status is None or created.status.phase in (None, "Pending")
    await emu.wait_for(lambda: emu.pods("shop")[0]["status"]["phase"] == "Running", what="run")
    deleted = await core.delete_namespaced_pod("probe", "shop")
    assert deleted.metadata.name == "probe"
    assert emu.pods("shop") == []


async def test_validation_errors_are_invalid_statuses(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    apps = client.AppsV1Api(api)
    mismatched = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="bad"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "x"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "y"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
            ),
        ),
    )
    with pytest.raises(ApiException) as invalid:
        await apps.create_namespaced_deployment("shop", mismatched)
    assert invalid.value.status == 422
    body = json.loads(invalid.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"

    with pytest.raises(ApiException) as missing_namespace:
        await apps.create_namespaced_deployment("nowhere", mismatched)
    assert missing_namespace.value.status == 404

    emu.add_deployment("shop", "api")
    with pytest.raises(ApiException) as negative:
        await apps.patch_namespaced_deployment_scale("api", "shop", {"spec": {"replicas": -1}})
    assert negative.value.status == 422


async def test_hpa_keeps_its_target_within_bounds(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.add_deployment("shop", "api", replicas=3)
    emu.add_hpa("shop", "api", min_replicas=2, max_replicas=4)
    await client.AppsV1Api(api).patch_namespaced_deployment_scale(
        "api", "shop", {"spec": {"replicas": 9}}
    )
    await emu.wait_for(
        lambda: emu.get("apps/v1", "deployments", "shop", "api")["spec"]["replicas"] == 4,
        what="HPA clamp to maxReplicas",
    )


async def test_statefulset_scales_down_from_the_highest_ordinal(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_statefulset("shop", "redis", replicas=3)
    await emu.wait_for(lambda: len(emu.pods("shop")) == 3, timeout_s=3, what="ordered start-up")
    assert sorted(p["metadata"]["name"] for p in emu.pods("shop")) == [
        "redis-0",
        "redis-1",
        "redis-2",
    ]
    await client.AppsV1Api(api).patch_namespaced_stateful_set_scale(
        "redis", "shop", {"spec": {"replicas": 1}}
    )
    await emu.wait_for(lambda: len(emu.pods("shop")) == 1, what="scale down")
    assert emu.pods("shop")[0]["metadata"]["name"] == "redis-0"


async def test_writes_accept_a_field_manager_and_refuse_a_bad_one(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    emu.add_deployment("shop", "api")
    apps = client.AppsV1Api(api)
    await apps.patch_namespaced_deployment_scale(
        "api", "shop", {"spec": {"replicas": 2}}, field_manager="remediator"
    )
    assert emu.get("apps/v1", "deployments", "shop", "api")["spec"]["replicas"] == 2
    assert emu.requests[-1].query["fieldManager"] == "remediator"

    with pytest.raises(ApiException) as too_long:
        await apps.patch_namespaced_deployment_scale(
            "api", "shop", {"spec": {"replicas": 3}}, field_manager="m" * 129
        )
    assert too_long.value.status == 422
    body = json.loads(too_long.value.body)
    assert (body["reason"], body["details"]["causes"][0]["field"]) == ("Invalid", "fieldManager")
    assert emu.get("apps/v1", "deployments", "shop", "api")["spec"]["replicas"] == 2


async def test_a_path_no_route_matches_is_a_not_found_status(emu: KubeEmulator) -> None:
    # A name with a newline (a hostile label that got past a daemon) or a typo in a path is
    # the API server's 404 with a Status body, not an emulator error.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            emu.url + "/apis/apps/v1/namespaces/kube-system%0A/deployments/x/y/z"
        ) as response,
    ):
        body = await response.json()
    assert response.status == 404
    assert (body["kind"], body["code"], body["reason"]) == ("Status", 404, "NotFound")
    assert emu.errors == []
