"""Patch semantics and selector parsing, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from remediator_testing.kube import ApiError, selectors
from remediator_testing.kube.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
)

DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "api", "labels": {"app": "api", "tier": "web"}, "finalizers": ["a"]},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "api", "image": "api:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "proxy", "image": "envoy:1"},
                ],
                "tolerations": [{"key": "x"}],
            }
        }
    },
}


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def test_strategic_merge_merges_containers_by_name_and_env_by_name() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "api", "image": "api:2", "env": [{"name": "B", "value": "2"}]}
                    ]
                }
            }
        }
    }
    result = apply_patch(STRATEGIC_MERGE_PATCH, DEPLOYMENT, patch)
    api, proxy = _containers(result)
    assert api == {
        "name": "api",
        "image": "api:2",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    }
    assert proxy == {"name": "proxy", "image": "envoy:1"}
    assert _containers(DEPLOYMENT)[0]["image"] == "api:1"  # the input is not mutated


def test_strategic_merge_directives_and_nulls() -> None:
    patch = {
        "metadata": {"labels": {"tier": None}, "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "api"}],
                    "containers": [{"name": "proxy", "$patch": "delete"}],
                    "tolerations": [{"key": "y"}],
                }
            }
        },
    }
    result = apply_patch(STRATEGIC_MERGE_PATCH, DEPLOYMENT, patch)
    assert result["metadata"]["labels"] == {"app": "api"}
    assert result["metadata"]["finalizers"] == []
    assert [c["name"] for c in _containers(result)] == ["api"]
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "y"}]  # replaced
    replaced = apply_patch(
        STRATEGIC_MERGE_PATCH, DEPLOYMENT, {"metadata": {"$patch": "replace", "name": "x"}}
    )
    assert replaced["metadata"] == {"name": "x"}


def test_merge_patch_replaces_lists() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "i"}]}}}}
    result = apply_patch(MERGE_PATCH, DEPLOYMENT, patch)
    assert _containers(result) == [{"name": "only", "image": "i"}]
    assert apply_patch(MERGE_PATCH, DEPLOYMENT, {"metadata": {"labels": None}})["metadata"] == {
        "name": "api",
        "finalizers": ["a"],
    }


def test_json_patch_and_its_failures() -> None:
    ops = [{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "e:2"}]
    assert _containers(apply_patch(JSON_PATCH, DEPLOYMENT, ops))[1]["image"] == "e:2"
    with pytest.raises(ApiError) as failed:
        apply_patch(JSON_PATCH, DEPLOYMENT, [{"op": "remove", "path": "/nope"}])
    assert (failed.value.code, failed.value.reason) == (422, "Invalid")
    with pytest.raises(ApiError) as unknown:
        apply_patch("application/apply-patch+yaml", DEPLOYMENT, {})
    assert unknown.value.code == 415


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=api", {"app": "api"}, True),
        ("app==api,tier!=db", {"app": "api", "tier": "db"}, False),
        ("tier in (web, api)", {"tier": "api"}, True),
        ("tier notin (web,api)", {}, True),
        ("canary", {"canary": ""}, True),
        ("!canary", {"canary": "yes"}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selector_strings(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.matches(selectors.parse_label_selector(selector), labels) is expected


def test_label_selector_objects_round_trip_to_strings() -> None:
    spec = {
        "matchLabels": {"app": "api"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    text = selectors.format_selector(spec)
    assert text == "app=api,tier in (api,web),!legacy"
    for labels in ({"app": "api", "tier": "web"}, {"app": "api", "tier": "x"}, {"app": "api"}):
        assert selectors.matches(selectors.from_label_selector(spec), labels) == (
            selectors.matches(selectors.parse_label_selector(text), labels)
        )
    assert not selectors.matches(selectors.from_label_selector(None), {})
    assert selectors.matches(selectors.from_label_selector({}), {"a": "b"})
