"""The alert rules: promtool accepts them, their unit tests pass, and those tests are sensitive
(a changed threshold, `for`, label or expected label makes them fail). Also the label contract:
every remediation="auto" alert carries what its playbook needs to find its one target."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alert_rules import support
from tests.alert_rules.support import (
    HUMAN_ONLY,
    PLAYBOOK_CONTRACTS,
    README,
    REQUIRED_ANNOTATIONS,
    RUNBOOK_BASE,
    UNIT_TESTS_DIR,
    WORKLOAD_LABELS,
    Rule,
    alerting_rules,
    duration,
    explain,
    grouping_labels,
    is_self_alert,
    load_yaml,
    rule_files,
    run,
    seconds,
    tool,
    unit_test_cases,
    unit_test_files,
)

RULES = alerting_rules()
ALERT_NAMES = sorted({rule.name for rule in RULES})


@pytest.fixture(scope="module")
def promtool() -> str:
    return tool("promtool")


def test_promtool_accepts_every_rules_file(promtool: str) -> None:
    files = rule_files()
    assert files, "no alert_rules/*.rules.yml found"
    result = run([promtool, "check", "rules", *map(str, files)])
    assert result.returncode == 0, explain(result)


def test_every_rules_file_has_a_unit_test_file() -> None:
    rules = {path.name.removesuffix(".rules.yml") for path in rule_files()}
    tests = {path.name.removesuffix(".test.yml") for path in unit_test_files()}
    assert rules == tests
    for path in unit_test_files():
        name = path.name.removesuffix(".test.yml")
        assert load_yaml(path)["rule_files"] == [f"../{name}.rules.yml"], path


@pytest.mark.parametrize("test_file", unit_test_files(), ids=lambda path: path.name)
def test_promtool_unit_tests_pass(promtool: str, test_file: Path) -> None:
    result = run([promtool, "test", "rules", str(test_file)])
    assert result.returncode == 0, explain(result)


# -- The tests are sensitive --------------------------------------------------------------


def _copy_pair(rules_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A rules file and its unit test file copied to tmp_path, keeping `../x.rules.yml`."""
    name = rules_file.name.removesuffix(".rules.yml")
    (tmp_path / "tests").mkdir()
    rules_copy = tmp_path / rules_file.name
    test_copy = tmp_path / "tests" / f"{name}.test.yml"
    shutil.copyfile(rules_file, rules_copy)
    shutil.copyfile(UNIT_TESTS_DIR / f"{name}.test.yml", test_copy)
    return rules_copy, test_copy


def test_harness_detects_a_wrong_expected_label(promtool: str, tmp_path: Path) -> None:
    _, test_copy = _copy_pair(rule_files()[0], tmp_path)
    control = run([promtool, "test", "rules", str(test_copy)])
    assert control.returncode == 0, explain(control)

    doc = load_yaml(test_copy)
    case = next(
        case
        for test in doc["tests"]
        for case in test.get("alert_rule_test") or []
        if case.get("exp_alerts")
    )
    labels = case["exp_alerts"][0]["exp_labels"]
    labels["namespace"] = labels["namespace"] + "-wrong"
    test_copy.write_text(yaml.safe_dump(doc, sort_keys=False))

    result = run([promtool, "test", "rules", str(test_copy)])
    assert result.returncode != 0, explain(result)
    assert "FAILED" in result.stdout + result.stderr
    assert case["alertname"] in result.stdout + result.stderr


@dataclass(frozen=True)
class Mutation:
    rule: Rule
    what: str
    apply: Callable[[dict[str, Any]], None]

    @property
    def id(self) -> str:
        return f"{self.rule.id}:{self.what}"


def _set_for(total: int) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        body["for"] = duration(total)

    return apply


def _flip_severity(body: dict[str, Any]) -> None:
    labels = body["labels"]
    labels["severity"] = "warning" if labels["severity"] == "critical" else "critical"


def _toggle_remediation(body: dict[str, Any]) -> None:
    labels = body["labels"]
    if labels.pop("remediation", None) is None:
        labels["remediation"] = "auto"


def _replace(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        assert old in body["expr"]
        body["expr"] = body["expr"].replace(old, new)

    return apply


# Threshold (and selector) changes each alert's tests must catch: for a threshold, the
# smallest step up and down the test values can tell apart. Every occurrence is replaced.
EXPR_MUTATIONS: dict[str, list[tuple[str, str]]] = {
    "KafkaLagHigh": [("> 10000", "> 10001"), ("> 10000", "> 9999")],
    "KafkaBrokerDown": [(") > 0", ") > 1"), ("== 0", "== 1"), ("[10m]", "[5m]")],
    "PodCrashLooping": [
        ("> 0", "> 10"),
        (">= 1", ">= 2"),
        ('reason="CrashLoopBackOff"', 'reason="ImagePullBackOff"'),
    ],
    "ServiceDown": [("== 0", "== 1"), ("max by", "min by")],
    "IngestionEngineDown": [("== 0", "== 1")],
    "ApplicationDown": [("== 0", "== 1")],
    "MemoryUsageHigh": [
        (") > 0.9", ") > 0.909"),
        (") > 0.9", ") > 0.891"),
        ('area="heap"', 'area=~".+"'),
    ],
    "HighErrorRate": [
        ("\n) > 0.05\n", "\n) > 0.0505\n"),
        ("\n) > 0.05\n", "\n) > 0.0495\n"),
        ("[5m])) > 0.05", "[5m])) > 0.0505"),
        ("[5m])) > 0.05", "[5m])) > 0.0495"),
        ('status=~"5.."', 'status=~"[45].."'),
    ],
    "HighResponseTime": [("> 2", "> 2.02"), ("> 2", "> 1.98"), ("0.95", "0.99")],
    "HighLatency": [("> 0.1", "> 0.101"), ("> 0.1", "> 0.099"), ("0.99", "0.95")],
    "DatabaseConnectionPoolExhausted": [(">=", ">")],
    "PostgresIdleInTransactionTooLong": [
        ("> 300", "> 303"),
        ("> 300", "> 297"),
        (r"( \\(aborted\\))?", ""),
    ],
    "RedisCacheDown": [("== 0", "== 1"), ("min by", "max by")],
    "RemediatorDown": [("== 0", "== 1")],
    "RemediatorRemediationFailures": [
        ("> 0", "> 1"),
        ("[15m]", "[10m]"),
        ('outcome="failed"', 'outcome=~"failed|refused"'),
    ],
    "RemediatorVerificationFailing": [
        ("> 0.5", "> 0.505"),
        ("> 0.5", "> 0.495"),
        ("not_verified|unknown", "not_verified"),
    ],
    "RemediatorStormBreakerOpen": [("> 0", "> 1")],
    "RemediatorEscalationChannelFailing": [
        ("> 0\nunless", "> 1\nunless"),
        ('result="ok"', 'result="error"'),
    ],
    "RemediatorOutboxGrowing": [
        ("> 100", "> 101"),
        ("> 100", "> 99"),
        ("[15m]) > 0", "[15m]) > 0.02"),
    ],
    "RemediatorQueueBacklog": [("> 100", "> 101"), ("> 100", "> 99")],
}


def _mutations() -> list[Mutation]:
    mutations = []
    for rule in RULES:
        wait = seconds(str(rule.body.get("for", "0s")))
        mutations.append(Mutation(rule, f"for={duration(wait + 60)}", _set_for(wait + 60)))
        if wait:
            mutations.append(Mutation(rule, f"for={duration(wait - 60)}", _set_for(wait - 60)))
        mutations.append(Mutation(rule, "severity", _flip_severity))
        mutations.append(Mutation(rule, "remediation-label", _toggle_remediation))
    for name, changes in EXPR_MUTATIONS.items():
        for old, new in changes:
            owners = [rule for rule in RULES if rule.name == name and old in rule.body["expr"]]
            assert len(owners) == 1, f"{name}: {old!r} must occur in exactly one rule"
            mutations.append(
                Mutation(owners[0], f"{old.strip()}->{new.strip()}", _replace(old, new))
            )
    return mutations


MUTATIONS = _mutations()


def test_every_alert_has_threshold_mutations() -> None:
    assert set(EXPR_MUTATIONS) == set(ALERT_NAMES)


@pytest.mark.parametrize("rules_file", rule_files(), ids=lambda path: path.name)
def test_a_rewritten_copy_still_passes(promtool: str, rules_file: Path, tmp_path: Path) -> None:
    """Control for the mutation tests: re-serialising the YAML alone changes nothing."""
    rules_copy, test_copy = _copy_pair(rules_file, tmp_path)
    rules_copy.write_text(yaml.safe_dump(load_yaml(rules_copy), sort_keys=False))
    result = run([promtool, "test", "rules", str(test_copy)])
    assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda mutation: mutation.id)
def test_unit_tests_catch_the_change(promtool: str, mutation: Mutation, tmp_path: Path) -> None:
    rules_copy, test_copy = _copy_pair(mutation.rule.file, tmp_path)
    doc = load_yaml(rules_copy)
    body = doc["groups"][mutation.rule.group]["rules"][mutation.rule.index]
    assert body.get("alert") == mutation.rule.name
    mutation.apply(body)
    rules_copy.write_text(yaml.safe_dump(doc, sort_keys=False))

    valid = run([promtool, "check", "rules", str(rules_copy)])
    assert valid.returncode == 0, f"the mutated rule is not even valid:\n{explain(valid)}"
    result = run([promtool, "test", "rules", str(test_copy)])
    assert result.returncode != 0, (
        f"{test_copy.name} still passes after changing {mutation.id}:\n{explain(result)}"
    )


# -- Every alert is tested both ways ------------------------------------------------------


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_firing_and_quiet_cases(name: str) -> None:
    cases = [case for case in unit_test_cases() if case.alertname == name]
    assert any(case.exp_alerts for case in cases), f"{name}: no case where it fires"
    assert any(not case.exp_alerts for case in cases), f"{name}: no case where it must not fire"


# -- Labels and annotations -----------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_severity_and_annotations(rule: Rule) -> None:
    assert rule.labels.get("severity") in {"critical", "warning"}
    annotations = rule.annotations
    for key in REQUIRED_ANNOTATIONS:
        assert str(annotations.get(key, "")).strip(), f"{rule.name}: annotation {key} missing"
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule.name.lower()
    assert re.search(rf"^### {rule.name}$", README.read_text(encoding="utf-8"), re.M), (
        f"README.md has no '### {rule.name}' heading for runbook_url to point at"
    )
    if rule.auto:
        playbook = PLAYBOOK_CONTRACTS[rule.name].playbook
        assert f"({playbook})" in annotations["remediation"], "remediation names the playbook"
    else:
        assert annotations["remediation"].startswith("None"), "says remediator does not act"


def test_auto_alerts_are_exactly_those_a_playbook_handles() -> None:
    auto = {rule.name for rule in RULES if rule.auto}
    assert auto == set(PLAYBOOK_CONTRACTS)
    humans = {rule.name for rule in RULES if not rule.auto}
    assert {name for name in humans if not is_self_alert(name)} == set(HUMAN_ONLY)


def test_remediator_alerts_never_route_to_the_daemon() -> None:
    own = [rule for rule in RULES if is_self_alert(rule.name)]
    assert own
    for rule in own:
        assert rule.file.name == "remediator.rules.yml"
        assert "remediation" not in rule.labels, rule.name
    for case in unit_test_cases():
        if is_self_alert(case.alertname):
            for alert in case.exp_alerts:
                assert "remediation" not in alert["exp_labels"], case


@pytest.mark.parametrize("name", sorted(PLAYBOOK_CONTRACTS))
def test_expression_keeps_the_labels_the_playbook_needs(name: str) -> None:
    contract = PLAYBOOK_CONTRACTS[name]
    for rule in (rule for rule in RULES if rule.name == name):
        kept = grouping_labels(rule.body["expr"])
        assert contract.labels <= kept, f"{name} aggregates away {contract.labels - kept}"
        other = WORKLOAD_LABELS - {contract.workload or "deployment"}
        assert not other & kept, f"{name} must not carry {other & kept}"


@pytest.mark.parametrize("name", sorted(PLAYBOOK_CONTRACTS))
def test_firing_cases_assert_the_labels_the_playbook_needs(name: str) -> None:
    contract = PLAYBOOK_CONTRACTS[name]
    fired = [
        alert["exp_labels"]
        for case in unit_test_cases()
        if case.alertname == name
        for alert in case.exp_alerts
    ]
    assert fired, f"{name}: no firing test case"
    for labels in fired:
        assert labels.get("remediation") == "auto"
        assert labels.get("severity") in {"critical", "warning"}
        missing = contract.labels - {key for key, value in labels.items() if value}
        assert not missing, f"{name}: a firing case lacks {missing}: {labels}"
        workloads = WORKLOAD_LABELS & set(labels)
        if contract.workload is None:
            assert workloads <= {"deployment"}, labels
        else:
            assert workloads == {contract.workload}, labels
    if contract.workload is None:
        assert any("deployment" in labels for labels in fired), (
            f"{name}: no case shows `deployment` derived from the owner"
        )


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_readme_documents_the_alert_and_its_metrics(name: str) -> None:
    readme = README.read_text(encoding="utf-8")
    alerts, _, rest = readme.partition("## Metrics each rule expects")
    metrics, _, _ = rest.partition("\n## ")
    assert f"| [{name}](#{name.lower()}) |" in alerts, "row in the alerts table"
    assert f"| {name} |" in metrics, "row in the exporter contract table"


def test_a_missing_binary_fails_naming_the_debian_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(support.shutil, "which", lambda _name: None)
    monkeypatch.setattr(support.os, "access", lambda _path, _mode: False)
    for name, package in [("promtool", "prometheus"), ("amtool", "prometheus-alertmanager")]:
        with pytest.raises(pytest.fail.Exception, match=f"Debian package '{package}'"):
            tool(name)
