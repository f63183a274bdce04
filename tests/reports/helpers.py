"""Configuration and playbooks for the report tests."""

from __future__ import annotations

from typing import Any

from remediator.playbook import Registry, Target
from remediator.playbook.changes import REPLICAS
from remediator_testing.fakes import FakeSlack
from tests.governance.helpers import World, fast_delivery, registry_with

SLACK_TOKEN = "xoxb-test-report-token"
CHANNEL = "C0REPORTS"


def reporting(slack: FakeSlack, *, mode: str = "auto", **reports: Any) -> dict[str, Any]:
    """Reports to the fake Slack with fast retries; a storm is more than 5 waiting reports."""
    return {
        "mode": mode,
        "reports": {
            "slack": {"channel": CHANNEL, "token": SLACK_TOKEN, "base_url": slack.api_url},
            "batch_threshold": 5,
            "batch_window_seconds": 0.05,
            **reports,
        },
        "escalation": {"delivery": fast_delivery()},
    }


def scaling(world: World) -> Registry:
    """A playbook that scales its Deployment 3 -> 5 (one action with the exact change)."""

    def change(target: Target) -> dict[str, Any]:
        return {REPLICAS: [3, 5]}

    return registry_with(world, change=change)


def text_of(message: dict[str, Any]) -> str:
    """Everything a human sees in a message: the fallback and every block's text."""
    parts = [str(message.get("text", ""))]
    for block in message.get("blocks") or []:
        if block.get("type") == "section":
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            parts.append(str(element.get("text", "")))
    return "\n".join(parts)
