"""The e2e harness changes the real rules and the example Alertmanager config only as documented:
durations divided by 60 in the rules; loopback URLs, the token file, the human receivers and
the timings in the Alertmanager config."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator_testing.harness.config import (
    ALERT_RULES,
    EXAMPLE_ALERTMANAGER,
    HUMAN_RECEIVERS,
    alertmanager_config,
    format_duration,
    parse_duration,
    scale_expr,
    scaled_rules,
)
from remediator_testing.servers import check_rules, require_binary

# Anything that looks like a duration inside [] or after `offset`.
_DURATIONS = re.compile(r"(\[)[0-9a-z]+(:[0-9a-z]*)?(\])|(offset\s+-?)[0-9a-z]+")


def _without_durations(expr: str) -> str:
    return _DURATIONS.sub(lambda m: "D", expr)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("0m", 0),
        ("500ms", 500),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
    ],
)
def test_durations_parse(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "5", "m", "5m3", "1.5m", "5 m"])
def test_a_bad_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(bad)


def test_durations_format_exactly() -> None:
    assert [format_duration(ms) for ms in (0, 5000, 60_000, 3_600_000, 1500)] == [
        "0s",
        "5s",
        "1m",
        "1h",
        "1500ms",
    ]


def test_expression_durations_are_divided_by_60() -> None:
    expr = "increase(x[15m]) > 0 and max_over_time(y[5m:1m]) offset 1h or rate(z[30s]) > 1e4"
    assert scale_expr(expr) == (
        "increase(x[15s]) > 0 and max_over_time(y[5s:1s]) offset 1m or rate(z[500ms]) > 1e4"
    )


def test_the_scaled_rules_differ_from_the_real_ones_only_in_durations(tmp_path: Path) -> None:
    written = scaled_rules(tmp_path)
    originals = sorted(ALERT_RULES.glob("*.rules.yml"))
    assert [p.name for p in written] == [p.name for p in originals]
    check_rules(*written)  # promtool: still valid rules
    changed = 0
    for original, scaled in zip(originals, written, strict=True):
        before = yaml.safe_load(original.read_text())
        after = yaml.safe_load(scaled.read_text())
        for group_before, group_after in zip(before["groups"], after["groups"], strict=True):
            for rule_before, rule_after in zip(
                group_before["rules"], group_after["rules"], strict=True
            ):
                if "for" in rule_before:
                    expected = parse_duration(str(rule_before["for"])) // 60
                    assert parse_duration(rule_after["for"]) == expected
                assert _without_durations(rule_after["expr"]) == _without_durations(
                    rule_before["expr"]
                )
                changed += rule_after["expr"] != rule_before["expr"]
                rest_before = {k: v for k, v in rule_before.items() if k not in ("for", "expr")}
                rest_after = {k: v for k, v in rule_after.items() if k not in ("for", "expr")}
                assert rest_after == rest_before
    assert changed > 0
    [lag] = [
        r
        for g in yaml.safe_load((tmp_path / "kafka.rules.yml").read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "KafkaLagHigh"
    ]
    assert lag["for"] == "5s" and "> 10000" in lag["expr"]


def _am(tmp_path: Path) -> dict[str, Any]:
    return alertmanager_config(
        daemon_url="http://127.0.0.1:9999",
        token_file=tmp_path / "token",
        humans_url="http://127.0.0.1:9998/hook",
        timing="1s",
        repeat_interval="2s",
    )


def test_the_alertmanager_config_changes_only_urls_token_humans_and_timings(
    tmp_path: Path,
) -> None:
    original = yaml.safe_load(EXAMPLE_ALERTMANAGER.read_text())
    config = _am(tmp_path)
    [hook] = next(r for r in config["receivers"] if r["name"] == "remediator")["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:9999/webhook"
    assert hook["http_config"]["authorization"]["credentials_file"] == str(tmp_path / "token")
    for name in HUMAN_RECEIVERS:
        [human] = next(r for r in config["receivers"] if r["name"] == name)["webhook_configs"]
        assert human == {"url": "http://127.0.0.1:9998/hook", "send_resolved": True}
    # Put the original values back: what remains must be the example, unchanged.
    restored = copy.deepcopy(config)
    receivers = {r["name"]: r for r in restored["receivers"]}
    original_receivers = {r["name"]: r for r in original["receivers"]}
    [restored_hook] = receivers["remediator"]["webhook_configs"]
    [original_hook] = original_receivers["remediator"]["webhook_configs"]
    restored_hook["url"] = original_hook["url"]
    restored_hook["http_config"] = original_hook["http_config"]
    for name in HUMAN_RECEIVERS:
        receivers[name].clear()
        receivers[name].update(original_receivers[name])
    restored["global"]["slack_api_url_file"] = original["global"]["slack_api_url_file"]
    timings = ("group_wait", "group_interval", "repeat_interval")

    def strip(route: dict[str, Any], seen: list[str]) -> None:
        for key in timings:
            if key in route:
                seen.append(route.pop(key))
        for child in route.get("routes") or []:
            strip(child, seen)

    new_timings: list[str] = []
    old_timings: list[str] = []
    strip(restored["route"], new_timings)
    strip(original["route"], old_timings)
    assert restored == original
    assert len(new_timings) == len(old_timings) and set(new_timings) == {"1s", "2s"}


def test_amtool_accepts_the_rewritten_config(tmp_path: Path) -> None:
    amtool = require_binary("/usr/bin/amtool", "prometheus-alertmanager")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(_am(tmp_path)))
    result = subprocess.run(
        [str(amtool), "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
