"""The crash-loop target: the Deployment owning the alert's pod, from labels alone."""

from __future__ import annotations

import pytest

from remediator.playbook import ResolveScope, TargetError, targets

resolve = targets.deployment_of_pod()


@pytest.mark.parametrize(
    ("labels", "key"),
    [
        ({"namespace": "shop", "pod": "api-7d9f8c6b5-x2x7k"}, "Deployment/shop/api"),
        ({"namespace": "shop", "pod": "order-api-7d9f8c6b5-x2x7k"}, "Deployment/shop/order-api"),
        (
            {"namespace": "shop", "pod": "x-7d9f8c6b5-x2x7k", "deployment": "web"},
            "Deployment/shop/web",
        ),
    ],
)
def test_the_owner_comes_from_the_label_or_the_pod_name(labels: dict[str, str], key: str) -> None:
    target = resolve(labels, ResolveScope())
    assert target.key == key
    assert target.extra == {"pod": labels["pod"]}


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"namespace": "shop", "pod": "redis-0"}, "not named like a Deployment's pod"),
        ({"namespace": "shop", "pod": "standalone"}, "not named like a Deployment's pod"),
        ({"namespace": "shop"}, "label 'pod' is missing"),
        (
            {"namespace": "shop", "pod": "a-b-c", "deployment": "../x"},
            "not a valid Kubernetes name",
        ),
        ({"pod": "api-7d9f8c6b5-x2x7k"}, "label 'namespace' is missing"),
    ],
)
def test_what_names_no_deployment_is_refused(labels: dict[str, str], problem: str) -> None:
    with pytest.raises(TargetError, match=problem):
        resolve(labels, ResolveScope())
