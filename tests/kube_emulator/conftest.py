"""Fixtures: a kubernetes.aio client for the emulator (`emu`, from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes.aio import client

from remediator_testing.kube import KubeEmulator


@pytest.fixture
async def api(emu: KubeEmulator) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=emu.url)) as api_client:
        yield api_client
