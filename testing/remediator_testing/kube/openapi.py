"""A minimal OpenAPI v3 index, enough for kubectl's server-side field validation check.

`kubectl apply -f` and `kubectl create -f` first look in `/openapi/v3` for the
PATCH operation of the object's kind and whether it accepts the
`fieldValidation` query parameter; if so they leave validation to the server
instead of downloading full schemas. So each group-version document lists the
operations with their `x-kubernetes-group-version-kind`, and no schemas: the
emulator accepts unknown fields rather than rejecting them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from remediator_testing.kube.resources import RESOURCE_TYPES, ResourceType

JsonObj = dict[str, Any]

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group_version: str) -> str:
    return f"apis/{group_version}" if "/" in group_version else f"api/{group_version}"


def _operation(rt: ResourceType, action: str) -> JsonObj:
    return {
        "operationId": f"{action}{rt.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY_PARAMS
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
    }


def group_version_document(group_version: str) -> JsonObj | None:
    types = [rt for rt in RESOURCE_TYPES if rt.api_version == group_version]
    if not types:
        return None
    paths: JsonObj = {}
    for rt in types:
        scope = f"/{_gv_path(group_version)}" + ("/namespaces/{namespace}" if rt.namespaced else "")
        paths[f"{scope}/{rt.plural}"] = {"post": _operation(rt, "post")}
        paths[f"{scope}/{rt.plural}/{{name}}"] = {
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch"),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def index() -> JsonObj:
    """The `/openapi/v3` discovery document pointing at each group-version document."""
    paths: JsonObj = {}
    for group_version in sorted({rt.api_version for rt in RESOURCE_TYPES}):
        document = json.dumps(group_version_document(group_version), sort_keys=True)
        digest = hashlib.sha256(document.encode()).hexdigest()[:16].upper()
        url = f"/openapi/v3/{_gv_path(group_version)}?hash={digest}"
        paths[_gv_path(group_version)] = {"serverRelativeURL": url}
    return {"paths": paths}
