"""A running Kubernetes API-server emulator and a daemon whose `kube=` client points at it.

`emu` is set up before `make_daemon` (a dependency of `cluster`), so the daemon and its client
session close before the emulator stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from remediator.testing.kube import KubeEmulator
from tests.conftest import MakeDaemon
from tests.kubernetes.helpers import Cluster

# Fast clocks: pods are Ready 0.1 s after they start, crash-looping ones restart every 0.1 s.
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
def cluster(emu: KubeEmulator, make_daemon: MakeDaemon) -> Cluster:
    return Cluster(emu, make_daemon)
