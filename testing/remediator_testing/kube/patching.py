"""The three PATCH content types the apiserver accepts for built-in types.

JSON merge patch (RFC 7386) and JSON patch (RFC 6902) are generic. Strategic
merge patch is Kubernetes-specific: lists that carry a `patchMergeKey` in the
Go types (containers by `name`, ports by `containerPort`, ...) are merged
element-wise instead of replaced, and `$patch`, `$retainKeys`,
`$setElementOrder/...` and `$deleteFromPrimitiveList/...` directives are
honoured. Only the merge keys of the types this emulator serves are known.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from remediator_testing.kube import errors

JsonObj = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# Field name -> merge key, from the `patchMergeKey` tags of the core/apps/policy types.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Primitive lists whose patchStrategy is "merge" (set union instead of replace).
MERGED_PRIMITIVE_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JsonObj, operations: Any) -> JsonObj:
    if not isinstance(operations, list):
        raise errors.bad_request("json patch must be a list of operations")
    try:
        result: JsonObj = jsonpatch.apply_patch(target, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise errors.ApiError(
            422, f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    existing: list[Any] = copy.deepcopy(current) if isinstance(current, list) else []
    if field in MERGED_PRIMITIVE_LISTS:
        return existing + [v for v in patch if v not in existing]
    merge_key = MERGE_KEYS.get(field)
    if merge_key is None or not all(isinstance(item, dict) for item in patch):
        return [item for item in copy.deepcopy(patch) if not _is_directive(item)]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not _is_directive(item)]
    for item in patch:
        key_value = item.get(merge_key)
        index = next(
            (
                i
                for i, old in enumerate(existing)
                if isinstance(old, dict) and old.get(merge_key) == key_value
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                existing.pop(index)
        elif index is None:
            existing.append(strategic_merge_patch({}, item))
        else:
            existing[index] = strategic_merge_patch(existing[index], item)
    return existing


def _is_directive(item: Any) -> bool:
    return isinstance(item, dict) and "$patch" in item


def apply_patch(content_type: str, target: JsonObj, patch: Any) -> JsonObj:
    kind = content_type.split(";", 1)[0].strip()
    if kind == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise errors.bad_request("patch body must be a JSON object")
    if kind == MERGE_PATCH:
        result: JsonObj = merge_patch(target, patch)
    elif kind == STRATEGIC_MERGE_PATCH:
        result = strategic_merge_patch(target, patch)
    else:
        raise errors.ApiError(415, f"the body of the request was in an unknown format: {kind}")
    return result
