"""RBAC mode: a service account's token gets exactly what its Roles and ClusterRoles grant,
403 with the API server's Status body otherwise; a SelfSubjectAccessReview answers from the
same rules. (`kubectl auth can-i` cannot be used here: it sends protobuf, which the emulator
does not speak, and kubectl sends no bearer token over plain HTTP.)"""

from __future__ import annotations

import json

import aiohttp
from kubernetes.aio import client

from remediator_testing.kube import KubeEmulator
from tests.kube_emulator.test_kubectl import Kubectl, kubectl_binary  # noqa: F401
from tests.kube_emulator.test_kubectl import kubectl as kubectl  # the fixture, by name

ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "scaler", "namespace": "shop"},
    "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    ],
}
BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "scaler", "namespace": "shop"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaler"},
    "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "ops"}],
}


async def get(emu: KubeEmulator, path: str, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(emu.url + path, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_only_what_the_bound_role_grants(emu: KubeEmulator) -> None:
    emu.add_deployment("shop", "api")
    emu.add_manifest(ROLE)
    emu.add_manifest(BINDING)
    token = emu.service_account_token("ops", "bot")

    assert (await get(emu, "/apis/apps/v1/namespaces/shop/deployments/api", token))[0] == 200
    status, body = await get(emu, "/apis/apps/v1/namespaces/default/deployments/api", token)
    assert status == 403
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "api" is forbidden: User "system:serviceaccount:ops:bot" '
        'cannot get resource "deployments" in API group "apps" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "api", "group": "apps", "kind": "deployments"},
        "code": 403,
    }
    status, body = await get(emu, "/api/v1/namespaces/shop/pods", token)
    assert (status, body["message"]) == (
        403,
        'pods is forbidden: User "system:serviceaccount:ops:bot" cannot list resource "pods" '
        'in API group "" in the namespace "shop"',
    )
    assert (await get(emu, "/api/v1/namespaces/shop/pods", "wrong"))[0] == 401
    assert (await get(emu, "/api/v1/namespaces/shop/pods", None))[0] == 200  # the administrator
    assert (await get(emu, "/apis/apps/v1", token))[0] == 200  # discovery is open
    assert [(d.verb, d.full_resource, ok) for d, ok in emu.rbac.decisions] == [
        ("get", "deployments", True),
        ("get", "deployments", False),
        ("list", "pods", False),
    ]


async def test_access_reviews_and_kubectl_see_the_same_rules(
    emu: KubeEmulator, kubectl: Kubectl
) -> None:
    emu.add_manifest(ROLE)
    emu.add_manifest(BINDING)
    token = emu.service_account_token("ops", "bot")
    configuration = client.Configuration(host=emu.url)
    configuration.api_key["authorization"] = token
    configuration.api_key_prefix["authorization"] = "Bearer"

    async def may(verb: str, resource: str, namespace: str, subresource: str = "") -> bool:
        async with client.ApiClient(configuration) as api:
            review = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        verb=verb,
                        group="apps" if resource == "deployments" else "",
                        resource=resource,
                        subresource=subresource,
                        namespace=namespace,
                    )
                )
            )
            answer = await client.AuthorizationV1Api(api).create_self_subject_access_review(review)
            return bool(answer.status.allowed)

    assert await may("patch", "deployments", "shop", "scale")
    assert await may("get", "deployments", "shop")
    assert not await may("patch", "deployments", "shop")
    assert not await may("get", "deployments", "default")
    assert not await may("delete", "pods", "shop")
    # kubectl (the administrator here: it sends no bearer token over plain HTTP) sees them.
    bindings = json.loads(await kubectl.run("get", "rolebinding", "scaler", "-o", "json"))
    assert bindings["subjects"] == BINDING["subjects"]
