"""Fakes of the escalation channels, started on loopback and stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from remediator_testing.fakes import FakePagerDuty, FakeWebhook
from tests.governance.helpers import PD_KEY


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty(routing_key=PD_KEY) as fake:
        yield fake


@pytest.fixture
async def hook() -> AsyncIterator[FakeWebhook]:
    async with FakeWebhook(headers={"Authorization": "Bearer hook-secret"}) as fake:
        yield fake
