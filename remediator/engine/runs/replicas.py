"""Replicas: each process is one, leased in the store; a silent one is fenced and reconciled.

The `Coordinator` registers this process (`store.replica`, named after its host or pod and
pid), renews its lease every third of it, and every `fence_interval` fences the replicas
whose lease is past (`store.fence_expired`: exactly one replica wins each). For each one it
fenced, it reconciles what that replica held with the start-up path (engine/runs/recovery.py)
restricted to it: its running timers wait again, its runs cut in the middle are reported and
escalated, never re-run; its intents without an outcome are read back, never repeated.

A fenced replica never acts again: the store refuses its intents (`Fenced`, checked in the
transaction that records the intent), its heartbeat says so, and then it stops at once:
`lost` is called, the engine halts its work, `/readyz` answers 503 and the process exits
non-zero so that the orchestrator restarts it as a new replica.

Leases and fencing are on the store's clock, never this process's (engine clocks may be a
test's manual clock, and replicas' clocks may disagree); the loops wait on real time.

A replica fences others only once its own heartbeats have succeeded for a whole lease: after
the store was away longer than the lease (a PostgreSQL outage), every lease is past, and
replicas fencing at once as the store comes back would fence each other and all restart. By
then every live replica has renewed its lease; only the dead ones are still expired. On a
shared store a pass also renews this replica's own lease first, so a replica that was itself
frozen finds out that it was fenced before it reconciles anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

from remediator.engine.runs.pipeline import Pipeline
from remediator.engine.runs.recovery import reconcile_interrupted
from remediator.logs import get_logger
from remediator.metrics import Metrics
from remediator.store import Store, StoreUnavailable
from remediator.tasks import stop_tasks

FORGET_EVERY = 3600.0  # seconds between two deletions of replicas fenced long ago


def _now() -> float:
    """Real time, as the loops wait (asyncio's loop clock): a lease is the world's time, never
    the engine's clock, which may be a test's manual one."""
    return asyncio.get_running_loop().time()


def replica_name() -> str:
    """The pod's name (`HOSTNAME`, which Kubernetes sets) or the host's, and the pid."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}/{os.getpid()}"


class Coordinator:
    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        metrics: Metrics,
        *,
        lease_seconds: float,
        fence_interval: float,
        name: str | None = None,
        on_lost: Callable[[str], None] | None = None,
        forget_after: float = 30 * 86400.0,
    ) -> None:
        self._store = store
        self._pipeline = pipeline
        self._metrics = metrics
        self.lease = lease_seconds
        self.fence_interval = fence_interval
        self.name = name or replica_name()
        self._on_lost = on_lost
        self.fenced = asyncio.Event()
        self.reason: str | None = None
        self.reconciled: dict[str, int] = {}  # fenced replica -> runs reconciled
        self._owed: list[str] = []  # fenced by this replica, not reconciled yet
        self._tasks: list[asyncio.Task[None]] = []
        self._fencing = asyncio.Lock()
        # Since when (monotonic) every heartbeat succeeded; None while the store is away.
        self._healthy_since: float | None = None
        self.passes = 0  # passes of the fencing loop, fencing or waiting for health
        # Fenced replicas that hold nothing are forgotten this long after (once an hour).
        self._forget_after = forget_after
        self._forgot_at: float | None = None
        self._log = get_logger(component="replicas", replica=store.replica)

    @property
    def replica(self) -> str:
        return self._store.replica

    async def register(self) -> None:
        """Join before claiming anything (the store refuses intents of an unleased replica)."""
        await self._store.register(self.name, self.lease)
        self._healthy_since = _now()
        self._metrics.replica_fenced.set(0)
        self._log.info("replica registered", name=self.name, lease_seconds=self.lease)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._fences()),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []
        if self.fenced.is_set():
            return
        # Gracefully: what the stop cut (a run cancelled mid-way) is reconciled now, by this
        # replica, and it fences itself, so that the others take its claims over at once
        # instead of a lease later. (One process on SQLite: its next start reconciles.) If
        # the store is away, its lease expires and another replica does it.
        with contextlib.suppress(StoreUnavailable):
            if self._store.shared:
                cause = f"the stop of replica {self.replica}"
                await reconcile_interrupted(self._pipeline, self.replica, cause)
            await self._store.release()

    # -- this replica ----------------------------------------------------------------------
    async def heartbeat(self) -> bool:
        """Renew the lease now; False (and `lost`) when this replica was fenced."""
        if self.fenced.is_set():
            return False
        try:
            renewed = await self._store.heartbeat(self.lease)
        except StoreUnavailable:
            self._healthy_since = None
            raise
        if renewed:
            if self._healthy_since is None:
                self._healthy_since = _now()
            return True
        self.lost("fenced by another replica: its lease had expired")
        return False

    @property
    def healthy(self) -> bool:
        """Its heartbeats have succeeded for a whole lease: it may fence others."""
        since = self._healthy_since
        return since is not None and _now() - since >= self.lease

    async def confirm(self) -> bool:
        """The store refused an intent as fenced: whether this replica is still live (its
        lease renewed now) or lost."""
        try:
            return await self.heartbeat()
        except StoreUnavailable:
            return False

    def lost(self, reason: str) -> None:
        """Stop acting at once: everything this replica held is another's to reconcile."""
        if self.fenced.is_set():
            return
        self.reason = reason
        self.fenced.set()
        self._metrics.replica_fenced.set(1)
        self._log.critical("replica fenced: stopping", reason=reason)
        if self._on_lost is not None:
            self._on_lost(reason)

    async def _heartbeats(self) -> None:
        while not self.fenced.is_set():
            await asyncio.sleep(self.lease / 3)
            try:
                await self.heartbeat()
            except StoreUnavailable as exc:
                # Others fence this replica if the store stays away past its lease; when it
                # is back, the heartbeat says so and the replica stops.
                self._log.error("heartbeat failed", error=str(exc))

    # -- the others ------------------------------------------------------------------------
    async def fence_pass(self) -> list[str]:
        """Fence the replicas whose lease is past and reconcile what each held; returns
        their ids. A reconciliation cut short (the store went away) is finished on the next
        pass: the fence is won once, the reconciliation owed until it is done."""
        async with self._fencing:
            if self.fenced.is_set():
                return []
            if self._store.shared and not await self.heartbeat():
                return []  # this replica was fenced itself (it was frozen): it stops
            fenced = await self._store.fence_expired()
            for replica in fenced:
                self._log.warning("fenced an expired replica; reconciling it", fenced=replica)
                self._metrics.claims.labels(kind="replica").inc()
                self._owed.append(replica)
            while self._owed:
                replica = self._owed[0]
                count = await reconcile_interrupted(self._pipeline, replica)
                self._owed.pop(0)
                self.reconciled[replica] = self.reconciled.get(replica, 0) + count
                self._log.warning("reconciled a fenced replica", fenced=replica, runs=count)
                # The replicas it had fenced and still holding runs or timers: it died before
                # it reconciled them (reconciling is idempotent: what is done is not found).
                for other in await self._store.replicas():
                    if (
                        other.fenced_by == replica
                        and other.id not in (replica, self.replica)
                        and (other.runs or other.timers)
                        and other.id not in self._owed
                    ):
                        self._owed.append(other.id)
            return fenced

    async def _forget(self) -> None:
        if self._forgot_at is not None and _now() - self._forgot_at < FORGET_EVERY:
            return
        self._forgot_at = _now()
        forgotten = await self._store.forget_replicas(self._forget_after)
        if forgotten:
            self._log.info("forgot replicas fenced long ago", count=forgotten)

    async def _fences(self) -> None:
        while not self.fenced.is_set():
            await asyncio.sleep(self.fence_interval)
            self.passes += 1
            if not self.healthy:
                continue  # renewing its own lease first (at start, after an outage)
            try:
                await self.fence_pass()
                await self._forget()
            except StoreUnavailable as exc:
                self._log.error("cannot fence expired replicas", error=str(exc))
            except Exception:  # never die: a dead fencer leaves dead replicas' work stuck
                self._log.exception("fencing failed")
