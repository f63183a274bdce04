"""Fixtures: a running emulator with a `shop` namespace, and a kubernetes.aio client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes.aio import client

from remediator.testing.kube import KubeEmulator

# Fast clocks: pods start in 0.1 s and crash-looping ones restart every 0.1 s.
TICK, READY_AFTER, CRASH_INTERVAL = 0.02, 0.1, 0.1


@pytest.fixture
async def emu() -> AsyncIterator[KubeEmulator]:
    emulator = KubeEmulator(tick=TICK, ready_after=READY_AFTER, crash_interval=CRASH_INTERVAL)
    await emulator.start()
    emulator.add_namespace("shop")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def api(emu: KubeEmulator) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=emu.url)) as api_client:
        yield api_client
