"""A daemon whose `kube=` client points at the emulator (`emu`, from tests/conftest.py).

`emu` is set up before `make_daemon` (a dependency of `cluster`), so the daemon and its client
session close before the emulator stops.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator_testing.kube import KubeEmulator
from tests.conftest import MakeDaemon
from tests.kubernetes.helpers import Cluster


@pytest.fixture
def cluster(emu: KubeEmulator, make_daemon: MakeDaemon, tmp_path: Path) -> Cluster:
    return Cluster(emu, make_daemon, tmp_path)
