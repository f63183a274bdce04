"""The Kubernetes client on its own: how it connects, what it retries, what a conflict does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from remediator.clients.kube import KubeClient, KubeError, open_kube
from remediator.clients.kube.resources import DEPLOYMENTS, EVICTION, PODS, SCALE
from remediator.config import ConfigError, KubernetesSettings
from remediator_testing.kube import KubeEmulator

FAST = {
    "retry": {"attempts": 3, "initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.02},
}


@pytest.fixture
async def kube(emu: KubeEmulator) -> AsyncIterator[KubeClient]:
    client = await open_kube(KubernetesSettings(mode="url", url=emu.url, **FAST))
    try:
        yield client
    finally:
        await client.close()


async def test_a_conflict_whose_change_no_longer_applies_is_not_reapplied(
    emu: KubeEmulator, kube: KubeClient
) -> None:
    emu.add_deployment("shop", "api", replicas=2)
    emu.faults.add(method="PATCH", path_regex="/scale$", status=409, times=1)
    emu.add_hpa("shop", "api", min_replicas=7, max_replicas=9)  # scales it to 7 meanwhile

    def still(scale: dict[str, object]) -> str | None:
        replicas = scale["spec"]["replicas"]  # type: ignore[index]
        return None if replicas in (2, 4) else f"replicas are {replicas}, not 2"

    with pytest.raises(KubeError) as failed:
        await kube.patch(
            DEPLOYMENTS, "shop", "api", {"spec": {"replicas": 4}}, subresource=SCALE,
            precondition=still,
        )  # fmt: skip
    assert failed.value.status == 409
    assert str(failed.value).endswith("the change no longer applies: replicas are 7, not 2")
    assert [r.method for r in emu.requests if r.path.endswith("/scale")] == ["PATCH", "GET"]


async def test_a_name_cannot_leave_its_collection(emu: KubeEmulator, kube: KubeClient) -> None:
    emu.add_deployment("kube-system", "coredns")
    assert await kube.find(DEPLOYMENTS, "shop", "../../kube-system/deployments/coredns") is None
    [request] = emu.requests
    assert request.path.startswith("/apis/apps/v1/namespaces/shop/deployments/")
    assert "kube-system" not in request.path.split("/deployments/")[0]


async def test_kubeconfig_mode_reaches_the_emulator(emu: KubeEmulator, tmp_path: Path) -> None:
    emu.add_deployment("shop", "api")
    settings = KubernetesSettings(mode="kubeconfig", kubeconfig=emu.kubeconfig(tmp_path / "kc"))
    client = await open_kube(settings)
    try:
        found = await client.get(DEPLOYMENTS, "shop", "api")
    finally:
        await client.close()
    assert found["metadata"]["name"] == "api"


async def test_url_mode_sends_the_token_file_and_rereads_it(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def deployments(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"kind": "DeploymentList", "items": []})

    app = web.Application()
    app.router.add_get("/apis/apps/v1/namespaces/shop/deployments", deployments)
    token = tmp_path / "token"
    token.write_text("first\n")
    async with TestServer(app) as server:
        url = str(server.make_url("/")).rstrip("/")
        client = await open_kube(KubernetesSettings(mode="url", url=url, token_file=token))
        try:
            await client.list_objects(DEPLOYMENTS, "shop")
            token.write_text("rotated")
            await client.list_objects(DEPLOYMENTS, "shop")
            token.unlink()
            with pytest.raises(KubeError) as unreadable:
                await client.list_objects(DEPLOYMENTS, "shop")
        finally:
            await client.close()
    assert seen == ["Bearer first", "Bearer rotated"]
    assert unreadable.value.status == 401
    assert "kubernetes.token_file: cannot read" in str(unreadable.value)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"mode": "kubeconfig", "kubeconfig": "/nonexistent/kubeconfig"},
            "kubernetes (kubeconfig)",
        ),
        ({"mode": "url", "url": "http://127.0.0.1:1", "token_file": "/nonexistent"}, "token_file"),
        ({"mode": "in_cluster"}, "kubernetes (in_cluster)"),
    ],
)
async def test_an_unusable_configuration_fails_at_start(
    settings: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as failed:
        await open_kube(KubernetesSettings(**settings))  # type: ignore[arg-type]
    assert problem in str(failed.value)


def test_url_mode_needs_a_url() -> None:
    with pytest.raises(ValueError, match=r"kubernetes\.mode is url but kubernetes\.url is not set"):
        KubernetesSettings(mode="url")


async def test_every_write_names_remediator_as_its_field_manager(
    emu: KubeEmulator, kube: KubeClient
) -> None:
    emu.add_deployment("shop", "api", replicas=1)
    await kube.patch(DEPLOYMENTS, "shop", "api", {"spec": {"replicas": 2}}, subresource=SCALE)
    await kube.get(DEPLOYMENTS, "shop", "api")
    pod = emu.pods("shop")[0]
    name = pod["metadata"]["name"]
    await kube.create(PODS, "shop", name, EVICTION, {"metadata": {"name": name}})

    managers = {(r.method, r.query.get("fieldManager")) for r in emu.requests}
    assert managers == {("PATCH", "remediator"), ("GET", None), ("POST", "remediator")}
