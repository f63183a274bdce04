"""`KubeClient`: the Kubernetes calls the playbooks need, as plain JSON dicts.

Requests go through the ApiClient of `kubernetes.aio` (authentication, TLS, connection pool)
with raw paths rather than the generated typed methods: one code path serves built-in kinds
and CRDs (KEDA) alike, and what comes back is exactly the API server's JSON, ready for the
record. Every call is retried by `retry.py`; a 409 on a patch re-reads the object and
re-applies the same body only if the caller's precondition still holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp

from remediator.clients.kube.errors import TRANSPORT, KubeError, from_response
from remediator.clients.kube.resources import MERGE_PATCH, Resource
from remediator.clients.kube.retry import RetryPolicy, with_retries
from remediator.config import ConfigError

JsonObj = dict[str, Any]
# Given the object as it is now, why the recorded change no longer applies (None: it does).
Precondition = Callable[[JsonObj], str | None]

CONFLICT_ATTEMPTS = 3
# Every write names us as its field manager, so the API server records which fields we set
# (`metadata.managedFields`) and a GitOps controller can be told to leave them alone (Argo CD:
# `ignoreDifferences.managedFieldsManagers`).
FIELD_MANAGER = "remediator"
_WRITES = ("PATCH", "POST", "PUT")


class KubeClient:
    def __init__(
        self,
        api: Any,
        *,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        poll_seconds: float = 2.0,
    ) -> None:
        self._api = api
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self.poll_seconds = poll_seconds

    async def close(self) -> None:
        await self._api.close()

    async def get(
        self, resource: Resource, namespace: str, name: str, subresource: str | None = None
    ) -> JsonObj:
        return await self._call("GET", resource, namespace, name, subresource)

    async def find(self, resource: Resource, namespace: str, name: str) -> JsonObj | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(resource, namespace, name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def list_objects(
        self, resource: Resource, namespace: str, *, label_selector: str | None = None
    ) -> list[JsonObj]:
        query = [("labelSelector", label_selector)] if label_selector else None
        found = await self._call("GET", resource, namespace, query=query)
        return list(found.get("items") or [])

    async def version(self) -> JsonObj:
        """The API server's `/version`: it answers, and takes our credentials."""
        return await self._get_path("GET /version", "/version")

    async def list_one(self, resource: Resource, namespace: str | None) -> None:
        """List at most one object, in `namespace` or (None) across every namespace: proves the
        daemon may read that collection; raises KubeError (403 when RBAC says no)."""
        if namespace is None:
            path = f"{resource.prefix}/{resource.plural}"
            await self._get_path(f"GET {path}", path, [("limit", "1")])
        else:
            await self._call("GET", resource, namespace, query=[("limit", "1")])

    async def access_review(self, attributes: JsonObj) -> JsonObj:
        """A SelfSubjectAccessReview of `attributes` (verb, group, resource, subresource,
        namespace): the API server's `status` (`allowed`, `reason`), asked as ourselves."""
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }

        async def once() -> JsonObj:
            return await self._request(
                f"POST {path}", "POST", path, {}, None, body, "application/json"
            )

        answer = await with_retries(self._retry, once)
        status: JsonObj = answer.get("status") or {}
        return status

    async def _get_path(
        self, what: str, path: str, query: list[tuple[str, str]] | None = None
    ) -> JsonObj:
        async def once() -> JsonObj:
            return await self._request(what, "GET", path, {}, query, None, "application/json")

        return await with_retries(self._retry, once)

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: Any,
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str | None = None,
        precondition: Precondition | None = None,
    ) -> JsonObj:
        """Apply `body`; on 409 re-read and re-apply the same body while `precondition` holds."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return await self._call(
                    "PATCH",
                    resource,
                    namespace,
                    name,
                    subresource,
                    body=body,
                    content_type=patch_type,
                )
            except KubeError as exc:
                if not exc.conflict or attempt == CONFLICT_ATTEMPTS:
                    raise
                fresh = await self.get(resource, namespace, name, subresource)
                why = precondition(fresh) if precondition is not None else None
                if why is not None:
                    raise KubeError(
                        409,
                        "Conflict",
                        f"changed while being updated, and the change no longer applies: {why}",
                        what=exc.what,
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, resource: Resource, namespace: str, name: str, body: Any) -> JsonObj:
        return await self._call("DELETE", resource, namespace, name, body=body)

    async def create(
        self, resource: Resource, namespace: str, name: str, subresource: str, body: Any
    ) -> JsonObj:
        """POST to a subresource, e.g. a pod's eviction."""
        return await self._call("POST", resource, namespace, name, subresource, body=body)

    async def _call(
        self,
        method: str,
        resource: Resource,
        namespace: str,
        name: str | None = None,
        subresource: str | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> JsonObj:
        what = f"{method} {resource.display(namespace, name, subresource)}"
        if method in _WRITES:
            query = [*(query or []), ("fieldManager", FIELD_MANAGER)]

        async def once() -> JsonObj:
            return await self._request(
                what,
                method,
                resource.path(namespace, name, subresource),
                {"namespace": namespace, "name": name} if name else {"namespace": namespace},
                query,
                body,
                content_type,
            )

        return await with_retries(self._retry, once)

    async def _request(
        self,
        what: str,
        method: str,
        path: str,
        path_params: dict[str, str],
        query: list[tuple[str, str]] | None,
        body: Any,
        content_type: str,
    ) -> JsonObj:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            params = await self._api.param_serialize(
                method,
                path,
                path_params=path_params,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = await self._api.call_api(*params, _request_timeout=self._timeout)
            data: bytes = await response.read()
        except ConfigError as exc:  # the token file vanished or emptied since start-up
            raise KubeError(401, "Unauthorized", str(exc), what=what) from None
        except TimeoutError:
            raise KubeError(
                TRANSPORT, "Timeout", f"no answer within {self._timeout:g} s", what=what
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise KubeError(
                TRANSPORT, "ConnectionError", f"{type(exc).__name__}: {exc}", what=what
            ) from None
        if not 200 <= response.status < 300:
            raise from_response(response.status, data, response.headers, what)
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            raise KubeError(
                response.status, "BadResponse", "the answer is not JSON", what=what
            ) from None
        if not isinstance(decoded, dict):
            raise KubeError(
                response.status, "BadResponse", "the answer is not an object", what=what
            )
        return decoded
