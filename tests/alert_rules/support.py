"""Shared knowledge of the alert rules' tests: where things are, how to run promtool/amtool,
and the label contract between each remediation alert and the playbook that handles it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "alert_rules"
UNIT_TESTS_DIR = RULES_DIR / "tests"
AM_CONFIG = RULES_DIR / "alertmanager.example.yml"
README = RULES_DIR / "README.md"

RUNBOOK_BASE = "https://github.com/remediator/remediator/blob/main/alert_rules/README.md#"
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url", "remediation")
WORKLOAD_LABELS = frozenset({"deployment", "statefulset"})

# Debian package that ships each binary: named in the failure when one is missing.
_PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


@dataclass(frozen=True)
class Contract:
    """What a playbook needs from an alert to find its one target."""

    playbook: str
    labels: frozenset[str]
    # The one workload label the alert must carry; None: optional `deployment` (pod alerts).
    workload: str | None


def _contract(playbook: str, workload: str | None, *labels: str) -> Contract:
    return Contract(playbook, frozenset(labels), workload)


PLAYBOOK_CONTRACTS: dict[str, Contract] = {
    "KafkaLagHigh": _contract(
        "scale-on-lag", "deployment", "namespace", "deployment", "consumergroup", "topic"
    ),
    "HighLatency": _contract("scale-on-latency", "deployment", "namespace", "deployment"),
    "HighResponseTime": _contract("scale-on-latency", "deployment", "namespace", "deployment"),
    "PodCrashLooping": _contract("restart-crashloop", None, "namespace", "pod"),
    "ServiceDown": _contract("restart-on-down", "deployment", "namespace", "deployment"),
    "IngestionEngineDown": _contract("restart-on-down", "deployment", "namespace", "deployment"),
    "ApplicationDown": _contract("restart-on-down", "deployment", "namespace", "deployment"),
    "RedisCacheDown": _contract(
        "statefulset-rolling-restart", "statefulset", "namespace", "statefulset"
    ),
    "KafkaBrokerDown": _contract(
        "statefulset-rolling-restart", "statefulset", "namespace", "statefulset"
    ),
    "HighErrorRate": _contract("rollback-on-error-spike", "deployment", "namespace", "deployment"),
    "DatabaseConnectionPoolExhausted": _contract(
        "pg-idle-in-transaction", "deployment", "namespace", "deployment", "datname"
    ),
}

# Alerts for humans only, besides the daemon's own (Remediator*).
HUMAN_ONLY = frozenset({"MemoryUsageHigh", "PostgresIdleInTransactionTooLong"})


def is_self_alert(name: str) -> bool:
    return name.startswith("Remediator")


def tool(name: str) -> str:
    """Path of promtool/amtool; fails (never skips) naming the Debian package if missing."""
    found = shutil.which(name) or f"/usr/bin/{name}"
    if not (os.path.isfile(found) and os.access(found, os.X_OK)):
        package = _PACKAGES[name]
        pytest.fail(
            f"{name} not found on PATH or at /usr/bin/{name}: install the Debian package "
            f"'{package}' (apt-get install {package})",
            pytrace=False,
        )
    return found


def run(command: Sequence[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(result.args)}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def unit_test_files() -> list[Path]:
    return sorted(UNIT_TESTS_DIR.glob("*.test.yml"))


@dataclass(frozen=True)
class Rule:
    file: Path
    group: int
    index: int
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["alert"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body.get("labels") or {})

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.body.get("annotations") or {})

    @property
    def auto(self) -> bool:
        return self.labels.get("remediation") == "auto"

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.name}#{self.index}"


def alerting_rules() -> list[Rule]:
    rules = []
    for path in rule_files():
        for g, group in enumerate(load_yaml(path)["groups"]):
            for i, body in enumerate(group["rules"]):
                if "alert" in body:
                    rules.append(Rule(path, g, i, body))
    return rules


@dataclass(frozen=True)
class Case:
    """One `alert_rule_test` entry of a promtool unit test file."""

    file: Path
    alertname: str
    eval_time: str
    exp_alerts: list[dict[str, Any]]


def unit_test_cases() -> Iterator[Case]:
    for path in unit_test_files():
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test") or []:
                yield Case(path, case["alertname"], case["eval_time"], case.get("exp_alerts") or [])


_BY = re.compile(r"\b(?:by|group_left|group_right)\s*\(([^)]*)\)")


def grouping_labels(expr: str) -> set[str]:
    """Labels named in `by (...)`, `group_left (...)` or `group_right (...)` clauses."""
    return {label.strip() for match in _BY.findall(expr) for label in match.split(",") if label}


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    if not match or not duration:
        raise ValueError(f"unsupported duration {duration!r}")
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def duration(total: int) -> str:
    return f"{total // 60}m{total % 60}s" if total % 60 else f"{total // 60}m"
