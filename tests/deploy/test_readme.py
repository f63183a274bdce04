"""The README's "Deploy on Kubernetes" install commands, run as written with stock kubectl
against the emulator: the objects are there, the Deployment rolls out, and the service
account holds exactly the shipped rules (as the API server's RBAC would decide them)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import yaml

from remediator_testing.kube import KubeEmulator
from remediator_testing.kube.rbac import Attributes
from tests.deploy.render import ROOT, config_map, kubectl_binary, one, render

SA = "system:serviceaccount:remediator:remediator"


def install_commands() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploy on Kubernetes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section should have one block of install commands"
    return blocks[0]


async def sh(script: str, kubeconfig: Path, home: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        "/bin/bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=ROOT,
        env={
            "PATH": str(kubectl_binary().parent) + ":/bin",
            "HOME": str(home),
            "KUBECONFIG": str(kubeconfig),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_the_install_commands_deploy_the_single_overlay(
    emu: KubeEmulator, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    kubeconfig = emu.kubeconfig(tmp_path / "kubeconfig")

    out = await sh(install_commands(), kubeconfig, home)

    assert 'deployment "remediator" successfully rolled out' in out
    rendered = render("single")
    for obj in rendered:
        kind, name = obj["kind"], obj["metadata"]["name"]
        assert f"{kind.lower()}" in out.lower() and name in out, (kind, name)
    secret = emu.get("v1", "secrets", "remediator", "remediator")
    assert set(secret["data"]) == {"webhook-token", "admin-operator"}
    assert all(len(value) > 40 for value in secret["data"].values())  # 32 random bytes, hex
    stored = emu.get("v1", "configmaps", "remediator", config_map(rendered)["metadata"]["name"])
    assert stored["data"] == config_map(rendered)["data"]
    deployment = emu.get("apps/v1", "deployments", "remediator", "remediator")
    wanted = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        == (wanted["securityContext"])
    )
    ready = [
        p
        for p in emu.pods("remediator", "app.kubernetes.io/name=remediator")
        if p["status"].get("phase") == "Running"
    ]
    assert len(ready) == 1
    for api_version, plural in [
        ("monitoring.coreos.com/v1", "servicemonitors"),
        ("monitoring.coreos.com/v1", "prometheusrules"),
        ("monitoring.coreos.com/v1alpha1", "alertmanagerconfigs"),
        ("networking.k8s.io/v1", "networkpolicies"),
        ("v1", "services"),
        ("v1", "persistentvolumeclaims"),
        ("v1", "serviceaccounts"),
    ]:
        assert emu.get(
            api_version,
            plural,
            "remediator",
            "remediator" if plural != ("persistentvolumeclaims") else "remediator-state",
        )

    # What the daemon's service account may now do is what the shipped ClusterRole says.
    shipped = [d for d in yaml.safe_load_all((ROOT / "deploy/base/rbac.yaml").read_text()) if d]
    role = emu.get("rbac.authorization.k8s.io/v1", "clusterroles", "", "remediator")
    assert role["rules"] == one(shipped, "ClusterRole")["rules"]

    def may(verb: str, group: str, resource: str, sub: str = "", ns: str = "shop") -> bool:
        return emu.rbac.allows(Attributes(SA, verb, group, resource, sub, ns, "x"))

    assert may("patch", "apps", "deployments", "scale")
    assert may("create", "", "pods", "eviction")
    assert not may("delete", "", "pods")
    assert not may("get", "", "secrets", ns="remediator")
    assert not may("patch", "apps", "statefulsets")

    # Running the same commands again changes nothing and fails nothing (an upgrade).
    again = await sh(install_commands(), kubeconfig, home)
    assert "deployment.apps/remediator unchanged" in again
