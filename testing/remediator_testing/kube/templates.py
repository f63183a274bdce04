"""Pod templates: hashing, comparison, ownership and stamping out pods.

The Deployment and StatefulSet controllers identify revisions by a hash of the
pod template and recognise an old ReplicaSet on rollback by comparing
templates; these helpers give both controllers the same notion of "same
template" and the same naming scheme the real controllers use.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from typing import Any

from remediator_testing.kube.admission import default_pod_spec, initial_pod_status
from remediator_testing.kube.store import pruned

JsonObj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
NODE_NAME = "emulator-node"
# The alphabet of k8s.io/apimachinery/pkg/util/rand: no vowels, no confusable digits.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def template_hash(template: JsonObj) -> str:
    digest = hashlib.sha256(
        json.dumps(pruned(without_hash(template)), sort_keys=True).encode()
    ).digest()
    number = str(int.from_bytes(digest[:4], "big"))
    return "".join(_ALPHABET[int(d) % len(_ALPHABET)] for d in number)


def without_hash(template: JsonObj) -> JsonObj:
    clean = copy.deepcopy(template)
    labels = clean.get("metadata", {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return clean


def same_template(a: JsonObj, b: JsonObj) -> bool:
    return bool(pruned(without_hash(a)) == pruned(without_hash(b)))


def owner_reference(owner: JsonObj) -> JsonObj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_ref(obj: JsonObj) -> JsonObj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controller_uid(obj: JsonObj) -> str | None:
    ref = controller_ref(obj)
    return str(ref["uid"]) if ref else None


def revision_of(obj: JsonObj) -> int:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def pod_from_template(
    owner: JsonObj, template: JsonObj, name: str, extra_labels: dict[str, str]
) -> JsonObj:
    meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    default_pod_spec(spec)
    spec["nodeName"] = NODE_NAME
    pod_meta: JsonObj = {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": {**(meta.get("labels") or {}), **extra_labels},
        "ownerReferences": [owner_reference(owner)],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    if owner["kind"] == "ReplicaSet":
        pod_meta["generateName"] = f"{owner['metadata']['name']}-"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": spec,
        "status": initial_pod_status(),
    }
