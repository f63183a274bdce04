"""`remediator replay`: recorded payloads through the real pipeline against the emulator,
seeded from what stock kubectl printed of a cluster; calls, diffs and exit codes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from remediator_testing.alerts import alert, body, notification
from remediator_testing.kube import KubeEmulator
from tests.kube_emulator.test_kubectl import KUBECTL

LAG = {
    "alertname": "KafkaLagHigh",
    "namespace": "shop",
    "deployment": "orders",
    "consumergroup": "orders",
    "topic": "orders",
    "partitions": "12",
    "severity": "warning",
}


async def _run(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _cluster_yaml(emu: KubeEmulator, tmp: Path) -> Path:
    """What a user would save: `kubectl get deploy,rs,pod,pdb,hpa -A -o yaml`."""
    emu.add_deployment("shop", "orders", replicas=3, image="orders:1")
    emu.add_deployment("shop", "api", replicas=2, image="api:1")
    emu.add_pdb("shop", "api-pdb", selector={"app": "api"}, min_available=1)
    await emu.wait_rolled_out("shop", "orders")
    await emu.wait_rolled_out("shop", "api")
    kubeconfig = emu.kubeconfig(tmp / "kubeconfig")
    home = tmp / "home"
    home.mkdir()
    process = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        f"--kubeconfig={kubeconfig}",
        "get",
        "deploy,rs,pod,pdb,hpa",
        "-A",
        "-o",
        "yaml",
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    path = tmp / "cluster.yaml"
    path.write_bytes(out)
    return path


async def test_replay_acts_on_the_seeded_cluster_and_prints_calls_and_diffs(
    emu: KubeEmulator, tmp_path: Path
) -> None:
    cluster = await _cluster_yaml(emu, tmp_path)
    firing = tmp_path / "lag.json"
    firing.write_bytes(body(notification([alert(LAG)])))
    code, out, err = await _run("replay", str(firing), "--cluster", str(cluster), cwd=tmp_path)
    assert code == 0, out + err
    assert "seeded" in out and "from " + str(cluster) in out
    assert "== " + str(firing) + " -> HTTP 200" in out
    assert "call get /apis/apps/v1/namespaces/shop/deployments/orders" in out
    assert "action [succeeded] patch /apis/apps/v1/namespaces/shop/deployments/orders/scale" in out
    assert "-  replicas: 3\n      +  replicas: 5" in out
    assert "run 1 scale-on-lag on Deployment/shop/orders: acted" in out
    # The daemon's log stays off stdout; the seeded cluster's other objects are untouched.
    assert "engine started" not in out
    assert "Deployment shop/api" not in out
    # Seeding adopted the ReplicaSets and pods kubectl printed instead of making new ones.
    assert "ReplicaSet shop/api" not in out and "Pod shop/api" not in out
    assert "ReplicaSet shop/orders" not in out  # scaling keeps the same ReplicaSet


async def test_refusals_and_failures_give_a_non_zero_exit(tmp_path: Path) -> None:
    # No cluster file: the target does not exist, so the run is refused; a playbook of the
    # user's own that raises fails its run.
    playbooks = tmp_path / "mine"
    playbooks.mkdir()
    (playbooks / "broken.py").write_text(
        "from remediator.playbook import playbook, targets\n"
        "@playbook(match='alertname=\"Broken\"', target=targets.deployment())\n"
        "async def broken(**_):\n"
        "    raise RuntimeError('the author forgot something')\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"playbook_dirs: [{playbooks}]\n")
    missing = tmp_path / "missing.json"
    missing.write_bytes(body(notification([alert(LAG)])))
    code, out, _ = await _run("replay", str(missing), cwd=tmp_path)
    assert code == 1
    assert "scale-on-lag on Deployment/shop/orders: refused" in out
    assert "-- cluster: no change" in out
    broken = tmp_path / "broken.json"
    broken.write_bytes(
        body(notification([alert({"alertname": "Broken", "namespace": "shop", "deployment": "x"})]))
    )
    code, out, _ = await _run("replay", str(broken), "--config", str(config), cwd=tmp_path)
    assert code == 1
    assert "broken on Deployment/shop/x: failed" in out and "the author forgot something" in out


async def test_unusable_input_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "4", "alerts": "nope"}')
    code, _, err = await _run("replay", str(bad), cwd=tmp_path)
    assert code == 2 and "cannot replay" in err and str(bad) in err
    code, _, err = await _run("replay", str(tmp_path / "absent.json"), cwd=tmp_path)
    assert code == 2 and "No such file" in err
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("kind: Widget\napiVersion: example.com/v1\nmetadata: {name: w}\n")
    good = tmp_path / "good.json"
    good.write_bytes(body(notification([alert(LAG)])))
    code, _, err = await _run("replay", str(good), "--cluster", str(cluster), cwd=tmp_path)
    assert code == 2 and "does not serve example.com/v1 Widget" in err
