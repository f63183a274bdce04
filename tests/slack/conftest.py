from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from remediator_testing.fakes import FakeSlack
from tests.reports.helpers import CHANNEL, SLACK_TOKEN


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake
