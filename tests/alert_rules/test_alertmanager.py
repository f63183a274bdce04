"""The example Alertmanager config: amtool accepts it, it routes every alert of the rules as
documented (remediation="auto" to the daemon and, later, to humans; the daemon's own alerts to
humans only), and its inhibit rules behave as intended in a real Alertmanager."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from remediator_testing.servers import AlertmanagerServer
from tests.alert_rules.support import (
    AM_CONFIG,
    PLAYBOOK_CONTRACTS,
    Rule,
    alerting_rules,
    explain,
    is_self_alert,
    load_yaml,
    run,
    tool,
)

WEBHOOK_URL = "http://remediator:9095/webhook"


@pytest.fixture(scope="module")
def amtool() -> str:
    return tool("amtool")


def _receivers(amtool: str, labels: Mapping[str, str]) -> set[str]:
    result = run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={AM_CONFIG}",
            *(f"{key}={value}" for key, value in labels.items()),
        ]
    )
    assert result.returncode == 0, explain(result)
    return set(result.stdout.strip().split(","))


def test_amtool_accepts_the_example_config(amtool: str) -> None:
    result = run([amtool, "check-config", str(AM_CONFIG)])
    assert result.returncode == 0, explain(result)
    assert "SUCCESS" in result.stdout


def _example_labels(rule: Rule) -> dict[str, str]:
    labels = {"alertname": rule.name, **rule.labels}
    if rule.name in PLAYBOOK_CONTRACTS:
        for label in PLAYBOOK_CONTRACTS[rule.name].labels:
            labels.setdefault(label, f"some-{label}")
    return labels


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule.id)
def test_every_alert_is_routed_as_documented(amtool: str, rule: Rule) -> None:
    human = "pagerduty" if rule.labels["severity"] == "critical" else "slack-warnings"
    expected = {"remediator", human} if rule.auto else {human}
    assert not (is_self_alert(rule.name) and rule.auto)
    assert _receivers(amtool, _example_labels(rule)) == expected


@pytest.mark.parametrize("severity", ["critical", "warning"])
def test_a_mislabelled_self_alert_still_never_reaches_the_daemon(
    amtool: str, severity: str
) -> None:
    labels = {"alertname": "RemediatorDown", "severity": severity, "remediation": "auto"}
    assert "remediator" not in _receivers(amtool, labels)


def test_unlabelled_alerts_go_to_humans_only(amtool: str) -> None:
    assert _receivers(amtool, {"alertname": "Anything", "severity": "critical"}) == {"pagerduty"}
    assert _receivers(amtool, {"alertname": "Anything"}) == {"slack-warnings"}


def test_the_remediator_receiver() -> None:
    config = load_yaml(AM_CONFIG)
    (receiver,) = [r for r in config["receivers"] if r["name"] == "remediator"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == WEBHOOK_URL
    assert webhook["send_resolved"] is True
    assert webhook["max_alerts"] == 50
    auth = webhook["http_config"]["authorization"]
    assert auth["credentials_file"] == "/etc/alertmanager/remediator-token"
    assert auth.get("type", "Bearer") == "Bearer"
    assert "credentials" not in auth, "secrets live in files, never in the config"


def test_the_routing_tree() -> None:
    route = load_yaml(AM_CONFIG)["route"]
    assert route["group_by"] == ["alertname", "namespace", "deployment", "statefulset", "datname"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "10s",
        "1m",
        "1h",
    )
    routes: list[dict[str, Any]] = route["routes"]
    # The daemon's own alerts are caught first and go no further.
    assert routes[0]["matchers"] == ['alertname=~"Remediator.+"']
    assert not routes[0].get("continue", False)
    daemon = [r for r in routes if r.get("receiver") == "remediator"]
    assert len(daemon) == 1
    assert daemon[0]["matchers"] == ['remediation="auto"']
    assert daemon[0]["continue"] is True
    assert "group_wait" not in daemon[0], "the daemon gets alerts without delay"
    # Humans see remediation="auto" alerts only if still firing after the daemon's chance.
    later = [r for r in routes if 'remediation="auto"' in r["matchers"] and r is not daemon[0]]
    assert {r["receiver"] for r in later} == {"pagerduty", "slack-warnings"}
    assert all(r["group_wait"] == "5m" for r in later)


def test_the_daemons_alerts_inhibit_nothing() -> None:
    for rule in load_yaml(AM_CONFIG)["inhibit_rules"]:
        assert "Remediator" not in " ".join(rule["source_matchers"]), rule


def _alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}}


@pytest.mark.servers
def test_inhibit_rules_in_a_real_alertmanager() -> None:
    auto_critical = {"severity": "critical", "remediation": "auto"}
    auto_warning = {"severity": "warning", "remediation": "auto"}
    alerts = {
        # A Deployment that is down: its error spike and lag are symptoms.
        "down": _alert("ServiceDown", namespace="a", deployment="web", **auto_critical),
        "errors-of-down": _alert("HighErrorRate", namespace="a", deployment="web", **auto_critical),
        "lag-of-down": _alert(
            "KafkaLagHigh",
            namespace="a",
            deployment="web",
            consumergroup="web",
            topic="t",
            **auto_warning,
        ),
        "errors-elsewhere": _alert(
            "HighErrorRate", namespace="a", deployment="api", **auto_critical
        ),
        # A crash-looping Deployment's latency is a symptom too.
        "crashloop": _alert(
            "PodCrashLooping",
            namespace="b",
            deployment="worker",
            pod="worker-1-x",
            **auto_critical,
        ),
        "latency-of-crashloop": _alert(
            "HighLatency", namespace="b", deployment="worker", **auto_warning
        ),
        # kube-prometheus-stack's own alert for the same pod: remediator has it in hand.
        "stack-crashloop": _alert(
            "KubePodCrashLooping",
            namespace="b",
            pod="worker-1-x",
            container="w",
            severity="warning",
        ),
        "stack-crashloop-elsewhere": _alert(
            "KubePodCrashLooping", namespace="b", pod="other-1-y", container="o", severity="warning"
        ),
        # Brokers down: every consumer group lags; no scaling.
        "brokers": _alert(
            "KafkaBrokerDown", namespace="kafka", statefulset="kafka", **auto_critical
        ),
        "lag-anywhere": _alert(
            "KafkaLagHigh",
            namespace="c",
            deployment="consumer",
            consumergroup="consumer",
            topic="u",
            **auto_warning,
        ),
        # The daemon down or stopped must not hide application alerts.
        "daemon-down": _alert("RemediatorDown", severity="critical", instance="r-0"),
        "breaker": _alert("RemediatorStormBreakerOpen", severity="critical", instance="r-0"),
        "slow": _alert("HighResponseTime", namespace="d", deployment="shop", **auto_warning),
    }
    suppressed = {
        "errors-of-down",
        "lag-of-down",
        "latency-of-crashloop",
        "lag-anywhere",
        "stack-crashloop",
    }

    def key(labels: Mapping[str, str]) -> str:
        (name,) = [k for k, a in alerts.items() if a["labels"] == dict(labels)]
        return name

    with AlertmanagerServer(AM_CONFIG.read_text(encoding="utf-8")) as server:
        server.post_alerts(list(alerts.values()))
        deadline = time.monotonic() + 15
        while True:
            state = {key(a["labels"]): a["status"]["state"] for a in server.alerts()}
            got = {name for name, value in state.items() if value == "suppressed"}
            if (len(state) == len(alerts) and got == suppressed) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert set(state) == set(alerts)
    assert got == suppressed, state
