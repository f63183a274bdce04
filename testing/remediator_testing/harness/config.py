"""The two documented rewrites that let the real `alert_rules/` run in seconds.

Rules: every duration is divided by `factor` (60: a minute becomes a second), i.e. each
rule's `for:` and every range selector `[...]` and `offset` in its expression. Nothing else
changes: thresholds, label matchers, aggregations, labels and annotations stay identical, so
the rule still fires on exactly the same metric values, only sooner.

Alertmanager: the example configuration is loaded as is, and only these fields are replaced:
the `remediator` receiver's URL (the daemon's loopback URL) and `credentials_file` (a temp
file with the daemon's token); the human receivers (`pagerduty`, `slack-warnings`) become
webhooks to a loopback fake, so nothing leaves the machine (`global.slack_api_url_file`,
which only Slack receivers use, goes with them); every `group_wait`, `group_interval` and
`repeat_interval` in the route tree is set to `timing`. Routes, matchers, grouping and
inhibit rules are untouched.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALERT_RULES",
    "EXAMPLE_ALERTMANAGER",
    "HUMAN_RECEIVERS",
    "REMEDIATOR_RECEIVER",
    "alertmanager_config",
    "format_duration",
    "parse_duration",
    "scale_expr",
    "scale_rule_file",
    "scaled_rules",
]

# The repository's alert_rules/ (its rule files and example Alertmanager configuration), shipped
# as this package's data: copied into the wheel, linked in a checkout. Every function below also
# takes the files to read as an argument, for users' own rules.
ALERT_RULES = Path(str(files("remediator_testing") / "alert_rules"))
EXAMPLE_ALERTMANAGER = ALERT_RULES / "alertmanager.example.yml"
REMEDIATOR_RECEIVER = "remediator"
HUMAN_RECEIVERS = ("pagerduty", "slack-warnings")

_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION = r"(?:\d+(?:ms|s|m|h|d|w|y))+"
# A range selector `[5m]` or a subquery `[30m:1m]` / `[30m:]`; and `offset 5m`.
_RANGE = re.compile(rf"\[({_DURATION})(?::({_DURATION})?)?\]")
_OFFSET = re.compile(rf"\boffset\s+(-?)({_DURATION})")


def parse_duration(text: str) -> int:
    """A Prometheus duration (`1h30m`, `5m`, `500ms`) in milliseconds."""
    text = text.strip()
    if text == "0":
        return 0
    pos, total = 0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def format_duration(ms: int) -> str:
    """Milliseconds as the shortest exact Prometheus duration (`0s`, `5s`, `1500ms`)."""
    if ms == 0:
        return "0s"
    for unit in ("h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def _scale(text: str, factor: int) -> str:
    return format_duration(parse_duration(text) // factor)


def scale_expr(expr: str, factor: int = 60) -> str:
    """`expr` with every range, subquery step and offset divided by `factor`."""

    def ranged(match: re.Match[str]) -> str:
        window = _scale(match.group(1), factor)
        if ":" not in match.group(0):
            return f"[{window}]"
        step = match.group(2)
        return f"[{window}:{_scale(step, factor) if step else ''}]"

    def offset(match: re.Match[str]) -> str:
        return f"offset {match.group(1)}{_scale(match.group(2), factor)}"

    return _OFFSET.sub(offset, _RANGE.sub(ranged, expr))


def scale_rule_file(document: Mapping[str, Any], factor: int = 60) -> dict[str, Any]:
    """A copy of a rules document with each rule's `for:` and expression durations scaled."""
    scaled = copy.deepcopy(dict(document))
    for group in scaled.get("groups") or []:
        if "interval" in group:
            group["interval"] = _scale(str(group["interval"]), factor)
        for rule in group.get("rules") or []:
            rule["expr"] = scale_expr(str(rule["expr"]), factor)
            if "for" in rule:
                rule["for"] = _scale(str(rule["for"]), factor)
    return scaled


def scaled_rules(
    dest: Path, *, source: Path = ALERT_RULES, factor: int = 60, pattern: str = "*.rules.yml"
) -> list[Path]:
    """Write a scaled copy of every rule file of `source` into `dest`; returns the copies."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob(pattern)):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        target = dest / path.name
        target.write_text(yaml.safe_dump(scale_rule_file(document, factor), sort_keys=False))
        written.append(target)
    if not written:
        raise FileNotFoundError(f"no {pattern} in {source}")
    return written


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes") or []:
        yield from _routes(child)


def alertmanager_config(
    *,
    daemon_url: str,
    token_file: Path,
    humans_url: str,
    timing: str = "1s",
    repeat_interval: str | None = None,
    source: Path = EXAMPLE_ALERTMANAGER,
) -> dict[str, Any]:
    """The example config with only the loopback URLs, the token file and the timings replaced.

    `daemon_url` is the daemon's base URL (`/webhook` is kept from the example's URL path),
    `humans_url` where the human receivers' notifications go (e.g. a FakeWebhook's URL).
    `repeat_interval` defaults to `timing`.
    """
    config: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in config["receivers"]}
    missing = {REMEDIATOR_RECEIVER, *HUMAN_RECEIVERS} - receivers.keys()
    if missing:
        raise ValueError(f"{source} no longer has the receivers {sorted(missing)}")
    [hook] = receivers[REMEDIATOR_RECEIVER]["webhook_configs"]
    path = re.sub(r"^[a-z]+://[^/]+", "", hook["url"]) or "/webhook"
    hook["url"] = daemon_url.rstrip("/") + path
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    for name in HUMAN_RECEIVERS:
        receivers[name].clear()
        receivers[name].update(
            {"name": name, "webhook_configs": [{"url": humans_url, "send_resolved": True}]}
        )
    config.get("global", {}).pop("slack_api_url_file", None)
    for route in _routes(config["route"]):
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = timing
        if "repeat_interval" in route:
            route["repeat_interval"] = repeat_interval or timing
    return config
