"""`remediator rbac`: the rules the enabled playbooks declare, where the config allows them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator import cli

USER_PLAYBOOK = '''
from typing import Any
from remediator.playbook import playbook, targets
from remediator.playbook.access import Rule, uses
from remediator.playbook.kube import Kube


@playbook(
    match='alertname="QueueBacklog"',
    target=targets.statefulset(),
    access=uses(Kube.workload, Kube.scale, on="StatefulSet") | {Rule("", "configmaps", "get")},
)
async def add_workers(*, kube: Kube, **_: Any) -> None:
    """Adds workers."""
'''

UNDECLARED = '''
from typing import Any
from remediator.playbook import playbook, targets
from remediator.playbook.kube import Kube


@playbook(match='alertname="X"', target=targets.deployment())
async def sneaky(*, kube: Kube, **_: Any) -> None:
    """Uses kube without saying how."""
'''


def rbac(tmp_path: Path, config: dict[str, Any], capsys: Any) -> tuple[int, list[Any], str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = cli.main(["rbac", "--config", str(path), "--namespace", "ops"])
    out, err = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out) if d], err


def rules(objects: list[Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for obj in objects
        if obj["kind"] in ("Role", "ClusterRole")
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_an_allow_list_gives_a_role_per_allowed_namespace_never_a_denied_one(
    tmp_path: Path, capsys: Any
) -> None:
    blast = {"allow_namespaces": ["shop", "kube-system", "pay"], "deny_namespaces": ["kube-*"]}
    code, objects, err = rbac(tmp_path, {"guards": {"blast_radius": blast}}, capsys)

    assert code == 0, err
    assert [(o["kind"], o["metadata"]["namespace"]) for o in objects] == [
        ("Role", "pay"),
        ("RoleBinding", "pay"),
        ("Role", "shop"),
        ("RoleBinding", "shop"),
    ]
    binding = objects[1]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "remediator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "remediator", "namespace": "ops"}
    ]
    assert ("apps", "deployments", "patch") in rules(objects)


def test_no_allow_list_gives_one_cluster_role(tmp_path: Path, capsys: Any) -> None:
    code, objects, _ = rbac(tmp_path, {}, capsys)

    assert code == 0
    assert [o["kind"] for o in objects] == ["ClusterRole", "ClusterRoleBinding"]


def test_disabled_playbooks_grant_nothing(tmp_path: Path, capsys: Any) -> None:
    names = [
        "pg-idle-in-transaction",
        "restart-crashloop",
        "restart-on-down",
        "rollback-on-error-spike",
        "scale-on-latency",
        "statefulset-rolling-restart",
    ]
    config = {"playbooks": {name: {"enabled": False} for name in names}}
    code, objects, _ = rbac(tmp_path, config, capsys)

    assert code == 0
    assert rules(objects) == {
        ("apps", "deployments", "get"),
        ("apps", "deployments/scale", "get"),
        ("apps", "deployments/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "get"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
        ("keda.sh", "scaledobjects", "get"),
        ("keda.sh", "scaledobjects", "list"),
        ("keda.sh", "scaledobjects", "patch"),
    }


def test_a_users_playbook_gets_its_declared_rules(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "workers.py").write_text(textwrap.dedent(USER_PLAYBOOK))
    config = {"builtin_playbooks": False, "playbook_dirs": [str(tmp_path / "mine")]}
    code, objects, err = rbac(tmp_path, config, capsys)

    assert code == 0, err
    assert rules(objects) == {
        ("apps", "statefulsets", "get"),
        ("apps", "statefulsets/scale", "get"),
        ("apps", "statefulsets/scale", "patch"),
        ("", "configmaps", "get"),
    }


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            {"guards": {"blast_radius": {"allow_namespaces": ["team-*", "shop"]}}},
            "allow_namespaces has patterns (team-*)",
        ),
        (
            {"guards": {"blast_radius": {"allow_namespaces": ["kube-system"]}}},
            "every namespace in guards.blast_radius.allow_namespaces is denied",
        ),
    ],
)
def test_namespaces_that_cannot_be_granted_are_errors(
    tmp_path: Path, capsys: Any, config: dict[str, Any], problem: str
) -> None:
    code, objects, err = rbac(tmp_path, config, capsys)

    assert (code, objects) == (2, [])
    assert problem in err


def test_a_playbook_taking_kube_without_declaring_its_rules_is_an_error(
    tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "sneaky.py").write_text(textwrap.dedent(UNDECLARED))
    config = {"playbook_dirs": [str(tmp_path / "mine")]}
    code, objects, err = rbac(tmp_path, config, capsys)

    assert (code, objects) == (2, [])
    assert "playbook sneaky" in err and "declares no `access=`" in err


def test_a_flux_suspend_policy_adds_patch_on_the_scaled_workload(
    tmp_path: Path, capsys: Any
) -> None:
    others = ["pg-idle-in-transaction", "restart-crashloop", "restart-on-down"]
    others += ["rollback-on-error-spike", "scale-on-latency", "statefulset-rolling-restart"]
    config: dict[str, Any] = {"playbooks": {name: {"enabled": False} for name in others}}
    code, objects, _ = rbac(tmp_path, config, capsys)
    assert code == 0 and ("apps", "deployments", "patch") not in rules(objects)

    config["playbooks"]["scale-on-lag"] = {"gitops": {"flux": {"scale": "suspend"}}}
    code, objects, _ = rbac(tmp_path, config, capsys)

    assert code == 0 and ("apps", "deployments", "patch") in rules(objects)
