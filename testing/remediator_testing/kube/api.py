"""Resource operations behind the REST verbs, free of HTTP concerns.

Each method takes an already-routed target plus decoded body/options and
returns the JSON the apiserver would answer with (or raises `ApiError`). This
is where admission (defaults, validation), the three patch types, the scale
and status subresources, delete options and eviction meet the store.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from remediator_testing.kube import admission, errors, patching, policy, selectors
from remediator_testing.kube.errors import status_body
from remediator_testing.kube.resources import NAMESPACES, PODS, RESOURCE_TYPES, ResourceType
from remediator_testing.kube.store import Store
from remediator_testing.kube.templates import random_suffix

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None = None
    subresource: str | None = None

    @property
    def ns(self) -> str:
        return self.namespace or ""

    @property
    def obj_name(self) -> str:
        return self.name or ""


@dataclass(frozen=True)
class Selection:
    labels: selectors.Selector
    fields: selectors.FieldSelector

    @classmethod
    def parse(cls, label_selector: str, field_selector: str) -> Selection:
        return cls(
            selectors.parse_label_selector(label_selector),
            selectors.parse_field_selector(field_selector),
        )

    def matches(self, obj: JsonObj) -> bool:
        return selectors.matches(self.labels, selectors.labels_of(obj)) and (
            selectors.field_matches(self.fields, obj)
        )


class ResourceApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, target: Target, selection: Selection) -> JsonObj:
        items = [o for o in self.store.list(target.rt, target.namespace) if selection.matches(o)]
        return {
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": self.store.resource_version},
            "items": items,
        }

    def get(self, target: Target) -> JsonObj:
        return self.store.require(target.rt, target.ns, target.obj_name)

    def _check_body(self, target: Target, body: Any) -> JsonObj:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        if (
            body.get("kind", target.rt.kind) != target.rt.kind
            or body.get("apiVersion", target.rt.api_version) != target.rt.api_version
        ):
            raise errors.bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the "
                f"expected API version ({target.rt.api_version}) or kind {body.get('kind')}"
            )
        meta = body.setdefault("metadata", {})
        if target.rt.namespaced and meta.setdefault("namespace", target.ns) != target.ns:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent "
                "on the request"
            )
        if target.name is not None and meta.get("name", target.name) != target.name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        return body

    def _admit(self, rt: ResourceType, obj: JsonObj) -> JsonObj:
        # Namespace lifecycle admission runs before validation, as in the apiserver.
        namespace = obj["metadata"].get("namespace")
        if rt.namespaced and self.store.get(NAMESPACES, "", namespace or "") is None:
            raise errors.not_found(NAMESPACES, namespace or "")
        admission.apply_defaults(rt, obj)
        admission.validate(rt, obj)
        return obj

    def create(self, target: Target, body: Any, dry_run: bool) -> JsonObj:
        obj = self._check_body(target, body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{random_suffix()}"
        return self.store.create(target.rt, self._admit(target.rt, obj), dry_run=dry_run)

    def replace(self, target: Target, body: Any, dry_run: bool) -> JsonObj:
        obj = self._check_body(target, body)
        obj["metadata"].setdefault("name", target.name)
        return self.store.update(target.rt, self._admit(target.rt, obj), dry_run=dry_run)

    def _patched(self, target: Target, content_type: str, patch: Any) -> JsonObj:
        current = self.get(target)
        result = patching.apply_patch(content_type, current, patch)
        meta = result.get("metadata") or {}
        if meta.get("name") != target.name or meta.get("namespace") != current["metadata"].get(
            "namespace"
        ):
            raise errors.bad_request("the name or namespace of the object cannot be patched")
        return result

    def patch(self, target: Target, content_type: str, patch: Any, dry_run: bool) -> JsonObj:
        obj = self._admit(target.rt, self._patched(target, content_type, patch))
        return self.store.update(target.rt, obj, dry_run=dry_run)

    def replace_status(self, target: Target, body: Any, dry_run: bool) -> JsonObj:
        obj = self._check_body(target, body)
        return self.store.update(target.rt, obj, status_only=True, dry_run=dry_run)

    def patch_status(self, target: Target, content_type: str, patch: Any, dry_run: bool) -> JsonObj:
        obj = self._patched(target, content_type, patch)
        return self.store.update(target.rt, obj, status_only=True, dry_run=dry_run)

    def _delete_one(
        self, rt: ResourceType, obj: JsonObj, options: JsonObj, dry_run: bool
    ) -> JsonObj:
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
        ):
            raise errors.conflict(rt, meta["name"])
        if options.get("propagationPolicy") == "Orphan" and not dry_run:
            self._orphan_dependents(meta["uid"])
        return self.store.delete(rt, meta.get("namespace", ""), meta["name"], dry_run=dry_run)

    def _orphan_dependents(self, uid: str) -> None:
        for rt in RESOURCE_TYPES:
            for obj in self.store.list(rt):
                refs = obj["metadata"].get("ownerReferences") or []
                kept = [ref for ref in refs if ref.get("uid") != uid]
                if len(kept) != len(refs):
                    obj["metadata"]["ownerReferences"] = kept
                    self.store.update(rt, obj)

    def delete(self, target: Target, options: JsonObj, dry_run: bool) -> JsonObj:
        gone = self._delete_one(target.rt, self.get(target), options, dry_run)
        if target.rt == PODS:
            return gone
        return status_body(
            200,
            "",
            success=True,
            details={
                "name": target.name,
                "group": target.rt.group,
                "kind": target.rt.plural,
                "uid": gone["metadata"]["uid"],
            },
        )

    def delete_collection(
        self, target: Target, selection: Selection, options: JsonObj, dry_run: bool
    ) -> JsonObj:
        listed = self.list(target, selection)
        for obj in listed["items"]:
            self._delete_one(target.rt, obj, options, dry_run)
        return listed

    def _scale_of(self, obj: JsonObj) -> JsonObj:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: meta[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selectors.format_selector(obj["spec"].get("selector") or {}),
            },
        }

    def get_scale(self, target: Target) -> JsonObj:
        return self._scale_of(self.get(target))

    def replace_scale(self, target: Target, scale: Any, dry_run: bool) -> JsonObj:
        if not isinstance(scale, dict):
            raise errors.bad_request("the request body must be a Scale object")
        obj = self.get(target)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            message = f"Invalid value: {replicas!r}: must be greater than or equal to 0"
            raise errors.invalid(target.rt, target.obj_name, "spec.replicas", message)
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(target.rt, target.obj_name)
        obj["spec"]["replicas"] = replicas
        return self._scale_of(self.store.update(target.rt, obj, dry_run=dry_run))

    def patch_scale(self, target: Target, content_type: str, patch: Any, dry_run: bool) -> JsonObj:
        scale = patching.apply_patch(content_type, copy.deepcopy(self.get_scale(target)), patch)
        return self.replace_scale(target, scale, dry_run)

    def evict(self, target: Target, body: Any, dry_run: bool) -> JsonObj:
        # Like the apiserver, a body without kind/apiVersion defaults to the endpoint's type.
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
            raise errors.bad_request("the request body must be a policy/v1 Eviction")
        if (body.get("metadata") or {}).get("name", target.name) != target.name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        policy.evict(
            self.store,
            target.ns,
            target.obj_name,
            dry_run=dry_run,
            preconditions=options.get("preconditions"),
        )
        return status_body(201, "", success=True)
