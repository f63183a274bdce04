"""The aiohttp application speaking the Kubernetes REST protocol.

Routing turns `/api/v1/namespaces/NS/pods/NAME/eviction`-style paths into a
`Target`, content negotiation picks between plain JSON, server-side Tables
(`kubectl get`) and watch streams, and middlewares record every request,
apply injected faults and render failures as `Status` objects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from remediator_testing.kube import (
    discovery,
    errors,
    field_managers,
    openapi,
    patching,
    tables,
    watch,
)
from remediator_testing.kube.api import ResourceApi, Selection, Target
from remediator_testing.kube.faults import Faults
from remediator_testing.kube.rbac import Authorizer, review
from remediator_testing.kube.resources import PODS, SELFSUBJECTACCESSREVIEWS, find_type
from remediator_testing.kube.store import Store

log = logging.getLogger(__name__)

JsonObj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    status: int | None = None


def _route(api_version: str, tail: str) -> Target:
    segments = [s for s in tail.split("/") if s]
    namespace = None
    if (
        len(segments) >= 3
        and segments[0] == "namespaces"
        and not (len(segments) == 3 and segments[2] in ("status", "finalize"))
    ):
        namespace, segments = segments[1], segments[2:]
    rt = find_type(api_version, segments[0]) if 0 < len(segments) <= 3 else None
    if rt is None or (rt.namespaced is False and namespace is not None):
        raise errors.ApiError(404, "the server could not find the requested resource")
    if rt.namespaced and namespace is None and len(segments) > 1:
        raise errors.ApiError(404, "the server could not find the requested resource")
    return Target(
        rt,
        namespace,
        segments[1] if len(segments) > 1 else None,
        segments[2] if len(segments) > 2 else None,
    )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


class ApiServer:
    def __init__(self, store: Store, faults: Faults) -> None:
        self.store = store
        self.api = ResourceApi(store)
        self.faults = faults
        self.rbac = Authorizer(store)
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self.address = ""

    def application(self) -> web.Application:
        app = web.Application(
            middlewares=[self._record, self._render_errors, self._authorize, self._inject]
        )
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._core_versions)
        app.router.add_get("/apis", self._groups)
        app.router.add_get("/apis/{group}", self._group)
        app.router.add_get("/openapi/v3", self._openapi_index)
        app.router.add_get("/openapi/v3/{path:.+}", self._openapi_document)
        app.router.add_get("/api/v1", self._resource_list)
        app.router.add_get("/apis/{group}/{version}", self._resource_list)
        app.router.add_route("*", "/api/v1/{tail:.+}", self._resource)
        app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._resource)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        entry = RecordedRequest(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Content-Type", ""),
            None,
        )
        self.requests.append(entry)
        if request.can_read_body:
            raw = await request.read()
            try:
                entry.body = json.loads(raw) if raw else None
            except ValueError:
                entry.body = raw.decode(errors="replace")
        response = await handler(request)
        transport = request.transport
        # A request whose connection was dropped (fault injection) never got a status.
        entry.status = None if transport is None or transport.is_closing() else response.status
        return response

    @web.middleware
    async def _render_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.ApiError as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return web.json_response(exc.body(), status=exc.code, headers=headers)
        except web.HTTPException as exc:
            # aiohttp's own answers (no route for the path, a method not allowed), as the API
            # server gives them: a Status body, not an emulator error.
            body = errors.status_body(exc.status, exc.reason)
            return web.json_response(body, status=exc.status)
        except Exception as exc:
            log.exception("emulator failed handling %s %s", request.method, request.path)
            self.errors.append(exc)
            body = errors.status_body(500, f"emulator error: {exc!r}")
            return web.json_response(body, status=500)

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.rbac.check(request)
        return await handler(request)

    @web.middleware
    async def _inject(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await self.faults.apply(request, handler)

    async def _version(self, _request: web.Request) -> web.Response:
        return web.json_response(discovery.KUBE_VERSION)

    async def _core_versions(self, _request: web.Request) -> web.Response:
        return web.json_response(discovery.core_versions(self.address))

    async def _groups(self, _request: web.Request) -> web.Response:
        return web.json_response(discovery.group_list())

    async def _group(self, request: web.Request) -> web.Response:
        group = discovery.group(request.match_info["group"])
        if group is None:
            raise errors.ApiError(404, "the server could not find the requested resource")
        return web.json_response(group)

    async def _resource_list(self, request: web.Request) -> web.Response:
        info = request.match_info
        group_version = f"{info['group']}/{info['version']}" if "group" in info else "v1"
        body = discovery.resource_list(group_version)
        if body is None:
            raise errors.ApiError(404, "the server could not find the requested resource")
        return web.json_response(body)

    async def _openapi_index(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi.index())

    async def _openapi_document(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        group_version = path.removeprefix("apis/").removeprefix("api/")
        document = openapi.group_version_document(group_version)
        if document is None:
            raise errors.ApiError(404, "the server could not find the requested resource")
        return web.json_response(document)

    async def _not_found(self, _request: web.Request) -> web.Response:
        raise errors.ApiError(404, "the server could not find the requested resource")

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        group_version = f"{info['group']}/{info['version']}" if "group" in info else "v1"
        target = _route(group_version, info["tail"])
        query = request.query
        dry_run = "dryRun" in query
        method = request.method
        field_managers.check(method, query)
        if target.subresource is None and target.name is None:
            selection = Selection.parse(
                query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
            if method == "GET" and query.get("watch") in ("true", "1"):
                render = self._table_renderer(request, target) if _wants_table(request) else None
                return await watch.stream(
                    request, self.store, target, selection, render or (lambda obj: obj)
                )
            if method == "GET":
                listed = self.api.list(target, selection)
                if _wants_table(request):
                    return self._table(request, target, listed["items"])
                return web.json_response(listed)
            if method == "POST" and target.rt == SELFSUBJECTACCESSREVIEWS:
                answer = review(self.rbac, self.rbac.user(request), await _body(request) or {})
                return web.json_response(answer, status=201)
            if method == "POST":
                created = self.api.create(target, await _body(request), dry_run)
                return web.json_response(created, status=201)
            if method == "DELETE":
                options = await _body(request) or {}
                return web.json_response(
                    self.api.delete_collection(target, selection, options, dry_run)
                )
        elif target.subresource is None:
            if method == "GET":
                obj = self.api.get(target)
                if _wants_table(request):
                    return self._table(request, target, [obj])
                return web.json_response(obj)
            if method == "PUT":
                return web.json_response(self.api.replace(target, await _body(request), dry_run))
            if method == "PATCH":
                content_type = self._patch_type(request)
                patched = self.api.patch(target, content_type, await _body(request), dry_run)
                return web.json_response(patched)
            if method == "DELETE":
                options = await _body(request) or {}
                return web.json_response(self.api.delete(target, options, dry_run))
        else:
            return await self._subresource(request, target, dry_run)
        raise errors.ApiError(
            405, f"the server does not allow this method on the requested resource: {method}"
        )

    async def _subresource(
        self, request: web.Request, target: Target, dry_run: bool
    ) -> web.StreamResponse:
        method, sub, rt = request.method, target.subresource, target.rt
        if sub == "status" and rt.status_subresource:
            if method == "GET":
                return web.json_response(self.api.get(target))
            if method == "PUT":
                body = await _body(request)
                return web.json_response(self.api.replace_status(target, body, dry_run))
            if method == "PATCH":
                content_type, body = self._patch_type(request), await _body(request)
                return web.json_response(self.api.patch_status(target, content_type, body, dry_run))
        elif sub == "scale" and rt.scale_subresource:
            if method == "GET":
                return web.json_response(self.api.get_scale(target))
            if method == "PUT":
                body = await _body(request)
                return web.json_response(self.api.replace_scale(target, body, dry_run))
            if method == "PATCH":
                content_type, body = self._patch_type(request), await _body(request)
                return web.json_response(self.api.patch_scale(target, content_type, body, dry_run))
        elif sub == "eviction" and rt == PODS:
            if method == "POST":
                body = await _body(request)
                return web.json_response(self.api.evict(target, body, dry_run), status=201)
        else:
            raise errors.ApiError(404, "the server could not find the requested resource")
        raise errors.ApiError(
            405, f"the server does not allow this method on the requested resource: {method}"
        )

    @staticmethod
    def _patch_type(request: web.Request) -> str:
        content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
        if content_type not in patching.PATCH_TYPES:
            accepted = ", ".join(patching.PATCH_TYPES)
            raise errors.ApiError(
                415, f"the body of the request was in an unknown format - accepted: {accepted}"
            )
        return content_type

    def _table(self, request: web.Request, target: Target, items: list[JsonObj]) -> web.Response:
        include = request.query.get("includeObject", "Metadata")
        return web.json_response(
            tables.render(target.rt, items, self.store.resource_version, include)
        )

    @staticmethod
    def _table_renderer(request: web.Request, target: Target) -> Callable[[JsonObj], JsonObj]:
        include = request.query.get("includeObject", "Metadata")

        def render(obj: JsonObj) -> JsonObj:
            return tables.render(target.rt, [obj], obj["metadata"]["resourceVersion"], include)

        return render
