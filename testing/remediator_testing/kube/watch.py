"""`?watch=true`: a stream of newline-delimited ADDED/MODIFIED/DELETED events.

`kubectl rollout status`, `kubectl delete --wait` and informers list and then
watch from the list's resourceVersion, so the stream replays what happened
since that version from the store's event log before following live changes.
Without a resourceVersion (or with "0") the current objects are sent as
synthetic ADDED events first, as the apiserver does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from remediator_testing.kube import errors
from remediator_testing.kube.api import Selection, Target
from remediator_testing.kube.store import Store

JsonObj = dict[str, Any]

_DEFAULT_TIMEOUT_S = 1800.0
# How often an idle stream checks whether its client went away.
_IDLE_CHECK_S = 0.5


def _line(kind: str, obj: JsonObj) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()


async def stream(
    request: web.Request,
    store: Store,
    target: Target,
    selection: Selection,
    render: Callable[[JsonObj], JsonObj],
) -> web.StreamResponse:
    """Serve one watch; `render` shapes each event's object (raw, or a Table for kubectl)."""
    query = request.query
    rv = query.get("resourceVersion", "")
    initial_events = query.get("sendInitialEvents") == "true" or rv in ("", "0")
    try:
        since = None if initial_events else int(rv)
    except ValueError as exc:
        raise errors.bad_request(f"invalid resourceVersion {rv!r}") from exc
    deadline = asyncio.get_running_loop().time() + float(
        query.get("timeoutSeconds") or _DEFAULT_TIMEOUT_S
    )
    watch = store.subscribe(target.rt, target.namespace, since)
    # Taken before the first await so no change can slip between snapshot and stream.
    snapshot = store.list(target.rt, target.namespace) if initial_events else []
    snapshot_rv = store.resource_version
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        for obj in snapshot:
            if selection.matches(obj):
                await response.write(_line("ADDED", render(obj)))
        if query.get("sendInitialEvents") == "true":
            bookmark = {
                "kind": target.rt.kind,
                "apiVersion": target.rt.api_version,
                "metadata": {
                    "resourceVersion": snapshot_rv,
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            await response.write(_line("BOOKMARK", bookmark))
        await _follow(request, response, watch.queue, selection, render, deadline)
    except ConnectionResetError:
        pass
    finally:
        watch.close()
    return response


async def _follow(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[Any],
    selection: Selection,
    render: Callable[[JsonObj], JsonObj],
    deadline: float,
) -> None:
    loop = asyncio.get_running_loop()
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(min(remaining, _IDLE_CHECK_S)):
                event = await queue.get()
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            continue
        if event is None:
            return
        if event.type == "DELETED" or selection.matches(event.obj):
            await response.write(_line(event.type, render(event.obj)))
