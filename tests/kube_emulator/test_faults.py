"""Fault injection as seen by the kubernetes.aio client."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from remediator_testing.kube import KubeEmulator


async def test_throttling_429_carries_retry_after(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.faults.add(method="GET", path_regex=r"/namespaces/shop/pods$", status=429, times=1)
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as throttled:
        await core.list_namespaced_pod("shop")
    assert throttled.value.status == 429
    assert throttled.value.headers["Retry-After"] == "1"
    body = json.loads(throttled.value.body)
    assert (body["reason"], body["details"]["retryAfterSeconds"]) == ("TooManyRequests", 1)
    assert (await core.list_namespaced_pod("shop")).items == []


async def test_injected_conflict_and_unavailable(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.add_deployment("shop", "api")
    # Settled first: a status update between the read and the second replace would be a real
    # conflict (a flake on a loaded machine), not the injected one.
    await emu.wait_rolled_out("shop", "api")
    apps = client.AppsV1Api(api)
    emu.faults.add(method="PUT", path_regex="/deployments/api$", status=409, times=1)
    emu.faults.add(method="GET", path_regex="/deployments/api$", status=503, times=1)

    with pytest.raises(ApiException) as unavailable:
        await apps.read_namespaced_deployment("api", "shop")
    assert unavailable.value.status == 503
    current = await apps.read_namespaced_deployment("api", "shop")
    with pytest.raises(ApiException) as conflict:
        await apps.replace_namespaced_deployment("api", "shop", current)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    await apps.replace_namespaced_deployment("api", "shop", current)


async def test_latency_delays_but_still_serves(emu: KubeEmulator, api: client.ApiClient) -> None:
    fault = emu.faults.add(method="GET", path_regex="/namespaces/shop$", latency_s=0.3)
    core = client.CoreV1Api(api)
    started = time.monotonic()
    namespace = await core.read_namespace("shop")
    assert time.monotonic() - started >= 0.3
    assert namespace.metadata.name == "shop"
    assert fault.hits == 1
    emu.faults.clear()
    started = time.monotonic()
    await core.read_namespace("shop")
    assert time.monotonic() - started < 0.3


async def test_connection_reset(emu: KubeEmulator, api: client.ApiClient) -> None:
    emu.add_deployment("shop", "api")
    apps = client.AppsV1Api(api)
    emu.faults.add(method="PATCH", path_regex="/deployments/api$", reset=True, times=1)
    patch = {"spec": {"replicas": 2}}
    with pytest.raises(aiohttp.ClientError):
        await apps.patch_namespaced_deployment("api", "shop", patch)
    assert (await apps.patch_namespaced_deployment("api", "shop", patch)).spec.replicas == 2
    assert [r.status for r in emu.requests] == [None, 200]


async def test_reset_get_is_retried_once_by_aiohttp(
    emu: KubeEmulator, api: client.ApiClient
) -> None:
    # aiohttp re-sends an idempotent request once when the connection drops (RFC 9112 9.3.1),
    # so a single reset is invisible to GET callers; two in a row are not.
    emu.faults.add(method="GET", path_regex="/namespaces/shop$", reset=True, times=1)
    core = client.CoreV1Api(api)
    assert (await core.read_namespace("shop")).metadata.name == "shop"
    emu.faults.add(method="GET", path_regex="/namespaces/shop$", reset=True, times=2)
    with pytest.raises(aiohttp.ClientError):
        await core.read_namespace("shop")
    assert [r.status for r in emu.requests] == [None, 200, None, None]


def test_a_fault_needs_an_effect() -> None:
    with pytest.raises(ValueError, match="needs a status"):
        KubeEmulator().faults.add(path_regex="/api")
