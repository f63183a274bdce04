"""In-memory object storage with the apiserver's bookkeeping rules.

Everything that makes an object look like it came from a real apiserver lives
here: the global resourceVersion counter, uid and creationTimestamp, the
generation bump on spec changes, optimistic concurrency (stale
resourceVersion -> 409), status being writable only through the status
subresource, and a replayable event log for watches. Both the HTTP layer and
the controllers write through this class, so they can never disagree.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from remediator_testing.kube import errors
from remediator_testing.kube.resources import NAMESPACES, RESOURCE_TYPES, ResourceType

JsonObj = dict[str, Any]

_HISTORY = 10_000
_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pruned(value: Any) -> Any:
    """Drop nulls and empty containers, mirroring Go's zero-value semantics.

    kubectl round-trips objects through typed Go structs, which turns absent
    fields into `{}` or `null` (e.g. `creationTimestamp: null` in templates);
    comparisons must treat those as equal, as apiequality.Semantic does.
    """
    if isinstance(value, dict):
        out = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def spec_part(obj: JsonObj) -> JsonObj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


@dataclass(frozen=True)
class WatchEvent:
    type: str
    rt: ResourceType
    obj: JsonObj
    resource_version: int


class Watch:
    """One subscriber's queue of events; `None` marks the end of the stream."""

    def __init__(self, store: Store, rt: ResourceType, namespace: str | None) -> None:
        self._store = store
        self.rt = rt
        self.namespace = namespace
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    def wants(self, event: WatchEvent) -> bool:
        if event.rt != self.rt:
            return False
        return self.namespace is None or event.obj["metadata"].get("namespace") == self.namespace

    def close(self) -> None:
        self._store.unsubscribe(self)


class Store:
    def __init__(self) -> None:
        self._objects: dict[ResourceType, dict[tuple[str, str], JsonObj]] = {
            rt: {} for rt in RESOURCE_TYPES
        }
        self._rv = 0
        self._history: deque[WatchEvent] = deque(maxlen=_HISTORY)
        self._watches: set[Watch] = set()
        self.listeners: list[Callable[[WatchEvent], None]] = []

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def get(self, rt: ResourceType, namespace: str, name: str) -> JsonObj | None:
        obj = self._objects[rt].get((namespace if rt.namespaced else "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def require(self, rt: ResourceType, namespace: str, name: str) -> JsonObj:
        obj = self.get(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[JsonObj]:
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self._objects[rt].items())
            if namespace is None or not rt.namespaced or ns == namespace
        ]

    def create(self, rt: ResourceType, obj: JsonObj, *, dry_run: bool = False) -> JsonObj:
        new = copy.deepcopy(obj)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise errors.invalid(rt, "", "metadata.name", "Required value: name is required")
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        if rt.namespaced:
            if not namespace:
                raise errors.invalid(rt, name, "metadata.namespace", "Required value")
            if ("", namespace) not in self._objects[NAMESPACES]:
                raise errors.not_found(NAMESPACES, namespace)
        else:
            meta.pop("namespace", None)
        if (namespace, name) in self._objects[rt]:
            raise errors.already_exists(rt, name)
        for field in ("resourceVersion", *_SYSTEM_FIELDS):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        if rt.tracks_generation:
            meta["generation"] = 1
        if dry_run:
            return new
        self._commit("ADDED", rt, (namespace, name), new)
        return copy.deepcopy(new)

    def update(
        self,
        rt: ResourceType,
        obj: JsonObj,
        *,
        status_only: bool = False,
        dry_run: bool = False,
    ) -> JsonObj:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        key = (namespace, name)
        current = self._objects[rt].get(key)
        if current is None:
            raise errors.not_found(rt, name)
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        if status_only:
            # Status writes may also carry annotations (the Deployment controller records
            # its revision that way), but never spec or labels.
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(obj.get("status"))
            annotations = meta.get("annotations")
            if annotations:
                new["metadata"]["annotations"] = copy.deepcopy(annotations)
            else:
                new["metadata"].pop("annotations", None)
        else:
            new = self._merge_main_update(rt, current, obj)
        if pruned(new) == pruned(current):
            return copy.deepcopy(current)
        if dry_run:
            return new
        self._commit("MODIFIED", rt, key, new)
        return copy.deepcopy(new)

    def _merge_main_update(self, rt: ResourceType, current: JsonObj, obj: JsonObj) -> JsonObj:
        new = copy.deepcopy(obj)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new.setdefault("metadata", {})
        old_meta = current["metadata"]
        for field in ("name", "namespace", "resourceVersion", *_SYSTEM_FIELDS):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if rt.status_subresource:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        if rt.tracks_generation:
            changed = pruned(spec_part(new)) != pruned(spec_part(current))
            if rt.annotations_bump_generation:
                changed |= meta.get("annotations") != old_meta.get("annotations")
            if changed:
                meta["generation"] = old_meta.get("generation", 1) + 1
        return new

    def delete(
        self, rt: ResourceType, namespace: str, name: str, *, dry_run: bool = False
    ) -> JsonObj:
        key = (namespace if rt.namespaced else "", name)
        current = self._objects[rt].get(key)
        if current is None:
            raise errors.not_found(rt, name)
        if dry_run:
            return copy.deepcopy(current)
        if rt == NAMESPACES:
            for other in RESOURCE_TYPES:
                if other.namespaced:
                    for ns, child in list(self._objects[other]):
                        if ns == name:
                            self._remove(other, (ns, child))
        return self._remove(rt, key)

    def _remove(self, rt: ResourceType, key: tuple[str, str]) -> JsonObj:
        gone = self._objects[rt].pop(key)
        self._rv += 1
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._publish(WatchEvent("DELETED", rt, gone, self._rv))
        return copy.deepcopy(gone)

    def _commit(self, kind: str, rt: ResourceType, key: tuple[str, str], obj: JsonObj) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[rt][key] = obj
        self._publish(WatchEvent(kind, rt, copy.deepcopy(obj), self._rv))

    def _publish(self, event: WatchEvent) -> None:
        self._history.append(event)
        for watch in self._watches:
            if watch.wants(event):
                watch.queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)

    def subscribe(self, rt: ResourceType, namespace: str | None, since: int | None) -> Watch:
        """Start a watch; with `since`, events newer than that version are replayed first."""
        watch = Watch(self, rt, namespace)
        oldest = self._history[0].resource_version if self._history else self._rv + 1
        if since is not None and since < self._rv and oldest > since + 1:
            raise errors.ApiError(
                410, f"too old resource version: {since} ({oldest - 1})", reason="Expired"
            )
        if since is not None:
            for event in self._history:
                if event.resource_version > since and watch.wants(event):
                    watch.queue.put_nowait(event)
        self._watches.add(watch)
        return watch

    def unsubscribe(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def end_watches(self) -> None:
        for watch in list(self._watches):
            watch.queue.put_nowait(None)
        self._watches.clear()
