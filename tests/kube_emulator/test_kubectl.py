"""Stock kubectl against the emulator: discovery, tables, scale, rollout, patch, delete.

kubectl runs with a private HOME and a generated kubeconfig whose only server
is the emulator on 127.0.0.1, so nothing on the machine is read or contacted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from remediator_testing.kube import KubeEmulator
from remediator_testing.kube.store import pruned

KUBECTL = Path("/usr/bin/kubectl")


@dataclass
class Kubectl:
    kubeconfig: Path
    home: Path

    async def run(self, *args: str, expect_rc: int = 0) -> str:
        env = {"HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig), "PATH": "/usr/bin:/bin"}
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL),
            f"--kubeconfig={self.kubeconfig}",
            "--request-timeout=10s",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            out, err = await process.communicate()
        assert process.returncode == expect_rc, (
            f"kubectl {' '.join(args)} exited {process.returncode}:\n{out.decode()}{err.decode()}"
        )
        return out.decode() + err.decode()

    async def json(self, *args: str) -> Any:
        return json.loads(await self.run(*args, "-o", "json"))


@pytest.fixture
def kubectl_binary() -> Path:
    if not KUBECTL.is_file():
        pytest.fail(f"stock kubectl is required at {KUBECTL} for these tests, and it is missing")
    return KUBECTL


@pytest.fixture
async def kubectl(emu: KubeEmulator, tmp_path: Path, kubectl_binary: Path) -> Kubectl:
    home = tmp_path / "home"
    home.mkdir()
    emu.add_deployment("shop", "api", replicas=3, image="api:1")
    await emu.wait_rolled_out("shop", "api")
    return Kubectl(emu.kubeconfig(tmp_path / "kubeconfig", namespace="shop"), home)


def _ready_pods(emu: KubeEmulator, selector: str = "app=api") -> int:
    return sum(
        1
        for pod in emu.pods("shop", selector)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    )


def _revisions(emu: KubeEmulator) -> dict[str, dict[str, Any]]:
    return {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
        for rs in emu.list_objects("apps/v1", "replicasets", "shop")
    }


async def test_get_prints_server_side_tables(emu: KubeEmulator, kubectl: Kubectl) -> None:
    out = await kubectl.run("get", "deploy,po,rs", "-n", "shop")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["deployment.apps/api", "3/3", "3", "3"]
    pod_rows = [line.split() for line in lines if line.startswith("pod/")]
    assert len(pod_rows) == 3
    assert all(row[1:4] == ["1/1", "Running", "0"] for row in pod_rows)
    rs_name = next(iter(_revisions(emu).values()))["metadata"]["name"]
    assert any(line.split()[:4] == [f"replicaset.apps/{rs_name}", "3", "3", "3"] for line in lines)


async def test_get_json_is_the_stored_object(emu: KubeEmulator, kubectl: Kubectl) -> None:
    deployment = await kubectl.json("get", "deploy", "api")
    stored = emu.get("apps/v1", "deployments", "shop", "api")
    assert deployment["kind"] == "Deployment"
    assert deployment["metadata"]["uid"] == stored["metadata"]["uid"]
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert deployment["status"]["availableReplicas"] == 3
    pods = await kubectl.json("get", "pods", "-l", "app=api")
    assert pods["kind"] == "List"
    assert len(pods["items"]) == 3


async def test_scale_converges_pods(emu: KubeEmulator, kubectl: Kubectl) -> None:
    out = await kubectl.run("scale", "deploy/api", "--replicas=5")
    assert out.strip() == "deployment.apps/api scaled"
    await emu.wait_for(lambda: _ready_pods(emu) == 5, what="5 ready pods")
    await kubectl.run("rollout", "status", "deploy/api", "--timeout=10s")


async def test_rollout_restart_then_undo(emu: KubeEmulator, kubectl: Kubectl) -> None:
    original = emu.get("apps/v1", "deployments", "shop", "api")["spec"]["template"]
    assert (await kubectl.run("rollout", "restart", "deploy/api")).strip() == (
        "deployment.apps/api restarted"
    )
    status = await kubectl.run("rollout", "status", "deploy/api", "--timeout=10s")
    assert 'deployment "api" successfully rolled out' in status
    revisions = _revisions(emu)
    assert set(revisions) == {"1", "2"}
    annotations = revisions["2"]["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    assert revisions["2"]["spec"]["replicas"] == 3
    assert revisions["1"]["spec"]["replicas"] == 0

    assert (await kubectl.run("rollout", "undo", "deploy/api")).strip() == (
        "deployment.apps/api rolled back"
    )
    await kubectl.run("rollout", "status", "deploy/api", "--timeout=10s")
    revisions = _revisions(emu)
    # The revision-1 ReplicaSet is reused and renumbered, as the real controller does.
    assert set(revisions) == {"2", "3"}
    history_annotation = "deployment.kubernetes.io/revision-history"
    assert revisions["3"]["metadata"]["annotations"][history_annotation] == "1"
    assert revisions["3"]["spec"]["replicas"] == 3
    deployment = emu.get("apps/v1", "deployments", "shop", "api")
    # kubectl sends the template back through Go structs, adding `creationTimestamp: null`.
    assert pruned(deployment["spec"]["template"]) == pruned(original)
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    history = await kubectl.run("rollout", "history", "deploy/api")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]


async def test_rollout_status_reports_a_stalled_rollout(
    emu: KubeEmulator, kubectl: Kubectl
) -> None:
    await kubectl.run("patch", "deploy/api", "-p", '{"spec":{"progressDeadlineSeconds":1}}')
    emu.set_template_health("shop", "api", image="api:2", healthy=False)
    await kubectl.run("set", "image", "deploy/api", "api=api:2")
    out = await kubectl.run("rollout", "status", "deploy/api", "--timeout=10s", expect_rc=1)
    assert 'deployment "api" exceeded its progress deadline' in out
    pods = await kubectl.run("get", "pods", "-l", "app=api")
    assert "CrashLoopBackOff" in pods
    assert _ready_pods(emu) == 3


async def test_patch_with_each_type(emu: KubeEmulator, kubectl: Kubectl) -> None:
    container_env = {"name": "api", "env": [{"name": "A", "value": "1"}]}
    patches = {
        "strategic": {"spec": {"template": {"spec": {"containers": [container_env]}}}},
        "merge": {"metadata": {"labels": {"team": "shop"}}},
        "json": [{"op": "replace", "path": "/spec/replicas", "value": 4}],
    }
    for kind, patch in patches.items():
        out = await kubectl.run("patch", "deploy/api", f"--type={kind}", "-p", json.dumps(patch))
        assert out.strip() == "deployment.apps/api patched"
    deployment = emu.get("apps/v1", "deployments", "shop", "api")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["env"]) == ("api:1", [{"name": "A", "value": "1"}])
    assert deployment["metadata"]["labels"] == {"app": "api", "team": "shop"}
    assert deployment["spec"]["replicas"] == 4

    failing_test = [{"op": "test", "path": "/spec/replicas", "value": 9}]
    out = await kubectl.run(
        "patch", "deploy/api", "--type=json", "-p", json.dumps(failing_test), expect_rc=1
    )
    assert "the server rejected our request due to an error in our request" in out


async def test_deleted_pod_is_recreated(emu: KubeEmulator, kubectl: Kubectl) -> None:
    victim = emu.pods("shop")[0]["metadata"]["name"]
    out = await kubectl.run("delete", "pod", victim)
    assert out.strip() == f'pod "{victim}" deleted'
    names = {p["metadata"]["name"] for p in emu.pods("shop")}
    assert victim not in names
    assert len(names) == 3
    await emu.wait_for(lambda: _ready_pods(emu) == 3, what="replacement pod ready")


async def test_api_resources_lists_short_names(kubectl: Kubectl) -> None:
    out = await kubectl.run("api-resources")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    for resource, short in [
        ("pods", "po"),
        ("statefulsets", "sts"),
        ("horizontalpodautoscalers", "hpa"),
        ("poddisruptionbudgets", "pdb"),
        ("namespaces", "ns"),
        ("replicasets", "rs"),
    ]:
        assert rows[resource][1] == short
    assert "leases" in rows


async def test_statefulset_rollout_restart_status_and_undo(
    emu: KubeEmulator, kubectl: Kubectl
) -> None:
    emu.add_statefulset("shop", "redis", replicas=2, image="redis:7")
    await kubectl.run("rollout", "status", "sts/redis", "--timeout=10s")
    await kubectl.run("rollout", "restart", "sts/redis")
    out = await kubectl.run("rollout", "status", "sts/redis", "--timeout=10s")
    # kubectl reports every RollingUpdate with a partition (defaulted to 0) this way.
    assert "partitioned roll out complete: 2 new pods have been updated" in out
    sts = emu.get("apps/v1", "statefulsets", "shop", "redis")
    assert "kubectl.kubernetes.io/restartedAt" in sts["spec"]["template"]["metadata"]["annotations"]
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    history = await kubectl.run("rollout", "history", "sts/redis")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    assert (await kubectl.run("rollout", "undo", "sts/redis")).strip() == (
        "statefulset.apps/redis rolled back"
    )
    await kubectl.run("rollout", "status", "sts/redis", "--timeout=10s")
    sts = emu.get("apps/v1", "statefulsets", "shop", "redis")
    assert "annotations" not in sts["spec"]["template"]["metadata"]
    await emu.wait_for(
        lambda: (
            all(
                "annotations" not in pod["metadata"] and pod["status"]["phase"] == "Running"
                for pod in emu.pods("shop", "app=redis")
            )
            and len(emu.pods("shop", "app=redis")) == 2
        ),
        what="pods back on the first template",
    )


async def test_events_show_in_describe_and_get(emu: KubeEmulator, kubectl: Kubectl) -> None:
    deployment = emu.get("apps/v1", "deployments", "shop", "api")
    event = {
        "metadata": {"name": "api.remediation", "namespace": "shop"},
        "involvedObject": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "api",
            "namespace": "shop",
            "uid": deployment["metadata"]["uid"],
        },
        "reason": "Remediated",
        "message": "restarted by remediator",
        "type": "Normal",
        "lastTimestamp": "2030-01-01T00:00:00+00:00",
        "source": {"component": "remediator"},
    }
    emu.add_object("v1", "events", event)
    described = await kubectl.run("describe", "deploy", "api")
    assert "Remediated" in described
    assert "restarted by remediator" in described
    listed = await kubectl.run("get", "events")
    assert listed.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "deployment/api" in listed


async def test_apply_and_create_from_manifests(
    emu: KubeEmulator, kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "worker"}},
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "worker", "image": "worker:1"}]},
            },
        },
    }
    path = tmp_path / "worker.json"
    path.write_text(json.dumps(manifest))
    assert (await kubectl.run("apply", "-f", str(path))).strip() == "deployment.apps/worker created"
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "worker:2"
    path.write_text(json.dumps(manifest))
    out = await kubectl.run("apply", "-f", str(path))
    assert out.strip() == "deployment.apps/worker configured"
    await emu.wait_rolled_out("shop", "worker")
    assert {p["spec"]["containers"][0]["image"] for p in emu.pods("shop", "app=worker")} == {
        "worker:2"
    }

    namespace = tmp_path / "ns.json"
    extra = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}
    namespace.write_text(json.dumps(extra))
    assert (await kubectl.run("create", "-f", str(namespace))).strip() == "namespace/extra created"
    assert emu.get("v1", "namespaces", "", "extra")["status"]["phase"] == "Active"


async def test_standalone_emulator_for_demos(tmp_path: Path, kubectl_binary: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator_testing.kube",
        f"--kubeconfig={kubeconfig}",
        "--ready-after=0.1",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            banner = (await process.stdout.readline()).decode()
        assert "kube emulator at http://127.0.0.1:" in banner
        home = tmp_path / "home"
        home.mkdir()
        out = await Kubectl(kubeconfig, home).run("get", "deploy,sts", "-n", "shop")
        assert "deployment.apps/api" in out
        assert "statefulset.apps/redis" in out
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            assert await process.wait() == 0
