"""Who manages an object, from its marks alone (remediator.playbook.gitops, pure)."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.config import GitOpsSettings, PlaybookSettings, Settings
from remediator.playbook.gitops import FieldChange, GitOpsRules, git_change, show_path, value_at


def deployment(annotations: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "consumer",
            "namespace": "shop",
            "annotations": annotations or {},
            "labels": {k.replace("__", "/").replace("_", "."): v for k, v in labels.items()},
        },
    }


def rules(**argocd: Any) -> GitOpsRules:
    return GitOpsRules(GitOpsSettings(argocd=argocd), lambda _name: PlaybookSettings())


TRACKING = "argocd.argoproj.io/tracking-id"


@pytest.mark.parametrize(
    "tracking",
    [
        "shop-apps:apps/Deployment:shop/consumer",
        "argocd_shop-apps:apps/Deployment:shop/consumer",  # an app in any namespace
    ],
)
def test_the_tracking_id_names_the_application(tracking: str) -> None:
    owner = rules().owner_of(deployment({TRACKING: tracking}))
    assert owner is not None
    assert str(owner) == f"Argo CD application {tracking.split(':')[0]}"
    assert owner.mark == f"annotation {TRACKING}"


@pytest.mark.parametrize(
    "tracking",
    [
        "shop-apps:apps/Deployment:shop/producer",  # copied from another object
        "shop-apps:apps/StatefulSet:shop/consumer",
        "shop-apps:/Deployment:other/consumer",
        "nonsense",
        ":apps/Deployment:shop/consumer",
    ],
)
def test_a_tracking_id_of_another_object_does_not_count(tracking: str) -> None:
    assert rules().owner_of(deployment({TRACKING: tracking})) is None


def test_the_instance_label_counts_only_under_label_tracking() -> None:
    obj = deployment(app_kubernetes_io__instance="shop-apps")
    assert rules().owner_of(obj) is None
    owner = rules(label_tracking=True).owner_of(obj)
    assert owner is not None and str(owner) == "Argo CD application shop-apps"


def test_flux_labels_and_its_switch_in_an_annotation_or_a_label() -> None:
    kustomized = deployment(
        kustomize_toolkit_fluxcd_io__name="apps",
        kustomize_toolkit_fluxcd_io__namespace="flux-system",
    )
    owner = rules().owner_of(kustomized)
    assert owner is not None and str(owner) == "Flux Kustomization flux-system/apps"
    assert (owner.switch, owner.suspended) == ("kustomize.toolkit.fluxcd.io/reconcile", False)

    kustomized["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/reconcile"] = "disabled"
    owner = rules().owner_of(kustomized)
    assert owner is not None and owner.suspended_elsewhere

    helm = deployment(
        {"helm.toolkit.fluxcd.io/driftDetection": "disabled", "remediator/suspended-by": "ep-1"},
        helm_toolkit_fluxcd_io__name="api",
        helm_toolkit_fluxcd_io__namespace="shop",
    )
    owner = rules().owner_of(helm)
    assert owner is not None and str(owner) == "Flux HelmRelease shop/api"
    assert (owner.suspended, owner.suspended_by, owner.suspended_elsewhere) == (True, "ep-1", False)


def test_policies_per_controller_and_kind_overridden_per_playbook() -> None:
    settings = Settings(
        gitops={"flux": {"policy": {"scale": "suspend"}}},
        playbooks={"scale-on-lag": {"gitops": {"flux": {"rollback": "act"}}}},
    )
    found = GitOpsRules(settings.gitops, settings.playbook)
    flux = found.owner_of(deployment(kustomize_toolkit_fluxcd_io__name="apps"))
    assert flux is not None
    assert found.policies("scale-on-lag", flux) == {
        "scale": "suspend",
        "rollback": "act",
        "restart": "act",
    }
    assert found.policies("other", flux)["rollback"] == "escalate"
    assert found.policy("other", "evict", flux) == "act"  # not a kind a policy covers
    assert found.suspends("other") and not GitOpsRules(
        GitOpsSettings(), lambda _name: PlaybookSettings()
    ).suspends("other")


def test_fields_read_and_shown_as_a_human_writes_them_in_a_manifest() -> None:
    obj = {
        "metadata": {"annotations": {"autoscaling.keda.sh/paused-replicas": "4"}},
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}},
    }
    image = ("spec", "template", "spec", "containers", "[api]", "image")
    paused = ("metadata", "annotations", "autoscaling.keda.sh/paused-replicas")
    assert value_at(obj, image) == "api:2"
    assert value_at(obj, ("spec", "template", "spec", "containers", "[db]", "image")) is None
    assert show_path(image) == "spec.template.spec.containers[api].image"
    assert show_path(paused) == 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]'
    owner = rules().owner_of(deployment({TRACKING: "shop-apps:apps/Deployment:shop/consumer"}))
    assert owner is not None
    changes = [FieldChange(image, "api:2", "api:1"), FieldChange(paused, "4", None)]
    assert git_change(changes, "Deployment/shop/consumer", owner) == (
        "set spec.template.spec.containers[api].image: api:1, remove metadata.annotations"
        '["autoscaling.keda.sh/paused-replicas"] in the manifest of Deployment shop/consumer, '
        "owned by Argo CD application shop-apps"
    )
