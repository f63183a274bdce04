"""Every manifest of both overlays renders with stock kubectl, validates offline against the
Kubernetes schemas (kubernetes-validate), uses no deprecated API version, and says what the
daemon and the issue need: probes on the real endpoints, the security context, the user of the
image, the secrets the config reads, the rules promtool accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from remediator.config import load_settings
from remediator.engine import rbac
from remediator.engine.assembly import load_registry
from tests.alert_rules.support import explain, run, tool
from tests.deploy.render import OVERLAYS, ROOT, config_map, one, render

# The oldest Kubernetes minor still supported upstream, and the newest the package knows.
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())
# The Prometheus Operator's kinds (CRDs: no schema in kubernetes-validate; checked below).
OPERATOR = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"),
}
IMAGE_UID = 10001


def built_in(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if (o["apiVersion"], o["kind"]) not in OPERATOR]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str, version: str) -> None:
    objects = built_in(render(overlay))
    assert len(objects) >= 9
    for obj in objects:
        # Strict: an unknown or misspelt field is an error, not silently dropped.
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_deprecated_or_prerelease_api_version(overlay: str) -> None:
    for obj in render(overlay):
        if (obj["apiVersion"], obj["kind"]) == (
            "monitoring.coreos.com/v1alpha1",
            "AlertmanagerConfig",
        ):
            continue  # the operator's served version of that CRD; v1beta1 needs its webhook
        assert not re.search(r"v\d+(alpha|beta)\d*$", obj["apiVersion"]), obj["kind"]
    assert {(o["apiVersion"], o["kind"]) for o in render(overlay)} >= OPERATOR


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deployment_is_locked_down_and_probed_on_the_daemons_endpoints(overlay: str) -> None:
    objects = render(overlay)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    c = container(objects)
    assert pod["serviceAccountName"] == "remediator"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": IMAGE_UID,
        "runAsGroup": IMAGE_UID,
        "fsGroup": IMAGE_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["runAsUser"] == IMAGE_UID
    assert set(c["resources"]) == {"requests", "limits"}
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
    # The probes hit the daemon's routes on the port its config listens on.
    settings = overlay_settings("single")
    [port] = c["ports"]
    assert (port["name"], port["containerPort"]) == ("http", settings.server.port)
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    routes = (ROOT / "remediator" / "http" / "app.py").read_text()
    assert '"/readyz"' in routes and '"/healthz"' in routes
    # Writable places: the state and /tmp only.
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
    assert mounts == {
        "/etc/remediator": True,
        "/run/secrets/remediator": True,
        str(settings.state.path.parent): False,
        "/tmp": False,
    }


def test_single_is_one_replica_recreated_on_a_volume() -> None:
    objects = render("single")
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"] == {
        "name": "state",
        "persistentVolumeClaim": {"claimName": "remediator-state"},
    }
    claim = one(objects, "PersistentVolumeClaim", "remediator-state")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_ha_is_two_replicas_spread_with_a_budget() -> None:
    objects = render("ha")
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [term] = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]


def overlay_settings(overlay: str, tmp: Path | None = None) -> Any:
    """The overlay's rendered configuration, loaded as the daemon loads it."""
    data = config_map(render(overlay))["data"]["remediator.yaml"]
    path = (tmp or Path("/nonexistent")) / "remediator.yaml"
    if tmp is None:
        return load_settings_text(data)
    path.write_text(data)
    return load_settings(path)


def load_settings_text(text: str) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "remediator.yaml"
        path.write_text(text)
        return load_settings(path, environ={})


def test_single_config_is_valid_and_its_rbac_is_the_shipped_one() -> None:
    settings = overlay_settings("single")
    registry, problems = load_registry(settings)
    assert problems == []
    found = rbac.plan(registry, settings)
    assert found.problems == ()
    shipped = [d for d in yaml.safe_load_all((ROOT / "deploy/base/rbac.yaml").read_text()) if d]
    assert rbac.manifests(found.rules, found.namespaces) == shipped
    assert [o for o in render("single") if o["kind"].endswith(("Role", "RoleBinding"))] == [
        {**o, "metadata": {**o["metadata"], "labels": {**o["metadata"]["labels"], **PART_OF}}}
        for o in shipped
    ]


PART_OF = {"app.kubernetes.io/part-of": "remediator"}


def test_ha_config_differs_only_by_the_state_backend_it_needs() -> None:
    single = yaml.safe_load(config_map(render("single"))["data"]["remediator.yaml"])
    ha = yaml.safe_load(config_map(render("ha"))["data"]["remediator.yaml"])
    assert ha["state"] == {
        "backend": "postgres",
        "dsn_file": "/run/secrets/remediator/state-dsn",
    }
    assert {k: v for k, v in ha.items() if k != "state"} == {
        k: v for k, v in single.items() if k != "state"
    }
    # The whole ha config loads (issue 16: the PostgreSQL backend and replicas).
    settings = load_settings_text(yaml.safe_dump(ha))
    assert settings.state.backend == "postgres"
    assert settings.state.dsn_file is not None
    assert str(settings.state.dsn_file) == "/run/secrets/remediator/state-dsn"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_the_config_reads_comes_from_the_mounted_secret(overlay: str) -> None:
    objects = render(overlay)
    config = yaml.safe_load(config_map(objects)["data"]["remediator.yaml"])
    files = {
        value.removeprefix("/run/secrets/remediator/")
        for value in strings(config)
        if value.startswith("/run/secrets/remediator/")
    }
    assert {"webhook-token", "admin-operator"} <= files
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    [secret] = [v["secret"] for v in volumes if "secret" in v]
    assert secret["secretName"] == "remediator" and "items" not in secret  # every key a file
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects)["env"]}
    assert all(ref["name"] == "remediator" and ref["optional"] for ref in env.values())
    assert {ref["key"] for ref in env.values()} == {"pagerduty-routing-key", "slack-bot-token"}
    readme = (ROOT / "README.md").read_text()
    for key in files | {ref["key"] for ref in env.values()}:
        assert f"`{key}`" in readme, f"README does not name the Secret key {key}"


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_network_policy_admits_alertmanager_and_prometheus_only() -> None:
    objects = render("single")
    policy = one(objects, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"].items() <= (
        one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    [ingress] = policy["ingress"]
    peers = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in ingress["from"]}
    assert peers == {"alertmanager", "prometheus"}
    assert all("ipBlock" not in p for p in ingress["from"])
    assert ingress["ports"] == [{"protocol": "TCP", "port": 9095}]
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 9090),
        ("TCP", 5432),
        ("TCP", 443),
        ("TCP", 6443),
    }


def test_the_service_and_service_monitor_reach_the_metrics() -> None:
    objects = render("single")
    service = one(objects, "Service")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 9095, "http")
    monitor = one(objects, "ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


def test_the_alertmanager_config_routes_auto_alerts_to_the_daemon() -> None:
    objects = render("single")
    spec = one(objects, "AlertmanagerConfig")["spec"]
    route = spec["route"]
    assert route["matchers"] == [{"name": "remediation", "value": "auto", "matchType": "="}]
    assert route["continue"] is True
    [receiver] = spec["receivers"]
    assert receiver["name"] == route["receiver"]
    [hook] = receiver["webhookConfigs"]
    service = one(objects, "Service")
    port = service["spec"]["ports"][0]["port"]
    assert hook["url"] == (
        f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}/webhook"
    )
    assert hook["sendResolved"] is True
    # The same inhibition of the stack's KubePodCrashLooping as the example configuration.
    [example] = [
        r
        for r in yaml.safe_load((ROOT / "alert_rules/alertmanager.example.yml").read_text())[
            "inhibit_rules"
        ]
        if 'alertname="KubePodCrashLooping"' in r["target_matchers"]
    ]
    [inhibit] = spec["inhibitRules"]

    def matchers(items: list[dict[str, str]]) -> list[str]:
        return [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in items]

    assert matchers(inhibit["sourceMatch"]) == example["source_matchers"]
    assert matchers(inhibit["targetMatch"]) == example["target_matchers"]
    assert inhibit["equal"] == example["equal"]
    assert hook["httpConfig"]["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "remediator", "key": "webhook-token"},
    }


def test_the_prometheus_rules_pass_promtool(tmp_path: Path) -> None:
    rules = [o for o in render("single") + render("alert-rules") if o["kind"] == "PrometheusRule"]
    assert len(rules) == 6
    for obj in rules:
        rules = tmp_path / f"{obj['metadata']['name']}.rules.yml"
        rules.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}))
        result = run([tool("promtool"), "check", "rules", str(rules)])
        assert result.returncode == 0, explain(result)


def test_the_pod_monitor_gives_the_labels_the_playbooks_need() -> None:
    [monitor] = [o for o in render("alert-rules") if o["kind"] == "PodMonitor"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    made = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert set(made) == {"job", "deployment", "statefulset", "datname"}
    kind_and_name = [
        "__meta_kubernetes_pod_controller_kind",
        "__meta_kubernetes_pod_controller_name",
    ]
    # The relabelings turn a pod's controller into the workload label, as Prometheus does.
    for label, controller, name, expected in [
        ("deployment", "ReplicaSet", "api-7d9f8c6b5", "api"),
        ("statefulset", "StatefulSet", "redis", "redis"),
    ]:
        rule = made[label]
        assert rule["sourceLabels"] == kind_and_name
        match = re.fullmatch(rule["regex"], f"{controller};{name}")
        assert match is not None and match.expand(r"\1") == expected
    assert re.fullmatch(made["deployment"]["regex"], "StatefulSet;redis") is None
    # No operator default would keep a *Down rule's job name: it comes from the app label.
    assert made["job"]["sourceLabels"] == ["__meta_kubernetes_pod_label_app"]
