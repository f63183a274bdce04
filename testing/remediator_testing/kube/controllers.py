"""The controller manager: runs every controller until the cluster settles.

Controllers run in a fixed order within one pass (GitOps applications, KEDA, HPA,
Deployments, ReplicaSets, StatefulSets, the kubelet stand-in, garbage collection, PDBs),
and passes repeat until nothing changes, so one reconcile leaves the store
consistent. The loop runs a reconcile every `tick` seconds, or immediately
after a change made through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from remediator_testing.kube.deployments import DeploymentController
from remediator_testing.kube.gitops import GitOpsControllers
from remediator_testing.kube.pods import HealthRules, PodLifecycle
from remediator_testing.kube.policy import HpaController, KedaController, PdbController
from remediator_testing.kube.replicasets import ReplicaSetController
from remediator_testing.kube.resources import (
    CONTROLLERREVISIONS,
    PODS,
    REPLICASETS,
    RESOURCE_TYPES,
)
from remediator_testing.kube.statefulsets import StatefulSetController
from remediator_testing.kube.store import Store, WatchEvent

log = logging.getLogger(__name__)

# A bound on passes per reconcile; a well-behaved cluster settles in a handful.
_MAX_PASSES = 20


def collect_garbage(store: Store) -> None:
    """Delete dependents whose owners are all gone (background propagation)."""
    alive = {obj["metadata"]["uid"] for rt in RESOURCE_TYPES for obj in store.list(rt)}
    for rt in (REPLICASETS, CONTROLLERREVISIONS, PODS):
        for obj in store.list(rt):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and all(ref.get("uid") not in alive for ref in refs):
                store.delete(rt, obj["metadata"]["namespace"], obj["metadata"]["name"])


class ControllerManager:
    def __init__(
        self, store: Store, *, tick: float, ready_after: float, crash_interval: float
    ) -> None:
        self._store = store
        self._tick = tick
        self.health = HealthRules()
        self._pods = PodLifecycle(self.health, ready_after, crash_interval)
        self._hpas = HpaController()
        self._keda = KedaController()
        self._deployments = DeploymentController()
        self._replicasets = ReplicaSetController()
        self._statefulsets = StatefulSetController()
        self._pdbs = PdbController()
        self.gitops = GitOpsControllers(store)
        self._wake = asyncio.Event()
        self._reconciling = False
        self.errors: list[BaseException] = []
        store.listeners.append(self._on_change)

    def _on_change(self, _event: WatchEvent) -> None:
        if not self._reconciling:
            self._wake.set()

    def reconcile(self) -> None:
        now = time.monotonic()
        self._reconciling = True
        try:
            for _ in range(_MAX_PASSES):
                before = self._store.resource_version
                self.gitops.sync(self._store, now)
                self._keda.sync(self._store)
                self._hpas.sync(self._store)
                self._deployments.sync(self._store, now)
                self._replicasets.sync(self._store)
                self._statefulsets.sync(self._store)
                self._pods.sync(self._store, now)
                collect_garbage(self._store)
                self._pdbs.sync(self._store)
                if self._store.resource_version == before:
                    break
        finally:
            self._reconciling = False

    async def run(self) -> None:
        while True:
            try:
                self.reconcile()
            except Exception as exc:  # keep the cluster running; the emulator reports it on stop
                log.exception("controller pass failed")
                self.errors.append(exc)
            # asyncio.timeout rather than wait_for: on 3.11, wait_for can swallow a
            # cancellation that races with the event being set, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._wake.wait()
            self._wake.clear()
