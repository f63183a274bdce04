"""`KubeEmulator`: the one object tests and demos hold.

It owns the store, the controllers, the fault rules and the HTTP server, and
offers scenario helpers that create objects through the same admission path as
the REST API, so a Deployment added by a test is indistinguishable from one
created with `kubectl create`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from remediator_testing.kube import manifests
from remediator_testing.kube.api import Selection, Target
from remediator_testing.kube.controllers import ControllerManager
from remediator_testing.kube.faults import Faults
from remediator_testing.kube.gitops import GitOpsControllers
from remediator_testing.kube.patching import MERGE_PATCH
from remediator_testing.kube.rbac import Authorizer
from remediator_testing.kube.resources import (
    DEPLOYMENTS,
    HPAS,
    NAMESPACES,
    PDBS,
    STATEFULSETS,
    ResourceType,
    find_type,
    type_for_kind,
)
from remediator_testing.kube.server import ApiServer, RecordedRequest
from remediator_testing.kube.store import Store, WatchEvent

JsonObj = dict[str, Any]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class EmulatorError(RuntimeError):
    """The emulator itself failed (a bug here, not a Kubernetes-level error)."""


class KubeEmulator:
    def __init__(
        self,
        *,
        tick: float = 0.05,
        ready_after: float = 0.2,
        crash_interval: float = 0.2,
    ) -> None:
        self.store = Store()
        self.faults = Faults()
        self._server = ApiServer(self.store, self.faults)
        self._controllers = ControllerManager(
            self.store, tick=tick, ready_after=ready_after, crash_interval=crash_interval
        )
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.url = ""
        for namespace in DEFAULT_NAMESPACES:
            self.add_namespace(namespace)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._server.requests

    @property
    def gitops(self) -> GitOpsControllers:
        """Argo CD applications and Flux Kustomizations that put back drift from Git
        (`gitops.argocd(...)`, `gitops.flux(...)`, then `.manage(...)` an object)."""
        return self._controllers.gitops

    @property
    def rbac(self) -> Authorizer:
        """RBAC mode (off until `enable_rbac`); its `decisions` show what was asked."""
        return self._server.rbac

    def enable_rbac(self, tokens: dict[str, str] | None = None) -> None:
        """Authorize every request that bears a token as the RBAC authorizer does, from the
        stored Roles, ClusterRoles and bindings; `tokens` maps tokens to users
        (`system:serviceaccount:NS:NAME` for a service account)."""
        self._server.rbac.enabled = True
        self._server.rbac.tokens.update(tokens or {})

    def service_account_token(self, namespace: str, name: str) -> str:
        """Turn RBAC mode on and return a new token acting as the service account."""
        token = secrets.token_urlsafe(24)
        self.enable_rbac({token: f"system:serviceaccount:{namespace}:{name}"})
        return token

    @property
    def errors(self) -> list[BaseException]:
        """Internal failures of the emulator (handler or controller exceptions)."""
        return [*self._server.errors, *self._controllers.errors]

    async def start(self) -> str:
        if self._runner is not None:
            raise EmulatorError("emulator already started")
        runner = web.AppRunner(self._server.application(), access_log=None, shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._server.address = f"{host}:{port}"
        self.url = f"http://{host}:{port}"
        self._loop_task = asyncio.create_task(self._controllers.run(), name="kube-controllers")
        return self.url

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        self.store.end_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.errors:
            raise EmulatorError(f"the emulator failed internally: {self.errors!r}")

    async def __aenter__(self) -> KubeEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def kubeconfig(
        self, path: str | Path, namespace: str = "default", token: str | None = None
    ) -> Path:
        """Write a kubeconfig pointing at this emulator (call after `start`); with `token`,
        requests act as that token's user (RBAC mode), else as the administrator."""
        if not self.url:
            raise EmulatorError("start the emulator before writing a kubeconfig")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": token} if token else {}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
            "preferences": {},
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def reconcile(self) -> None:
        """Run the controllers now, until the cluster settles for the current instant."""
        self._controllers.reconcile()

    def _create(self, rt: ResourceType, obj: JsonObj) -> JsonObj:
        namespace = obj["metadata"].get("namespace")
        created = self._server.api.create(Target(rt, namespace), obj, dry_run=False)
        self.reconcile()
        return created

    def add_object(self, api_version: str, plural: str, obj: JsonObj) -> JsonObj:
        """Create any served object (a manifest as dict) exactly as a POST would."""
        return self._create(self._type(api_version, plural), obj)

    def add_manifest(self, obj: JsonObj) -> JsonObj:
        """Create an object of any served kind from its manifest (`apiVersion` and `kind`)."""
        rt = type_for_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
        if rt is None:
            raise KeyError(f"the emulator does not serve {obj.get('apiVersion')} {obj.get('kind')}")
        return self._create(rt, obj)

    def load(self, objects: list[JsonObj]) -> list[JsonObj]:
        """Recreate a snapshot of a cluster (e.g. `kubectl get ... -o yaml`) as it was.

        Owners are created before what they own and owner references are pointed at the new
        uids; the controllers run once at the end, so a Deployment adopts its ReplicaSets (and
        keeps their revision history) instead of making new ones, and pods keep their names.
        """
        in_snapshot = {o.get("metadata", {}).get("uid") for o in objects} - {None}
        uids: dict[str, str] = {}
        pending = list(objects)
        created: list[JsonObj] = []
        while pending:
            ready = [
                o
                for o in pending
                if not any(
                    r.get("uid") in in_snapshot and r.get("uid") not in uids
                    for r in o.get("metadata", {}).get("ownerReferences") or []
                )
            ]
            if not ready:
                raise EmulatorError("the objects' owner references form a cycle")
            for obj in ready:
                pending.remove(obj)
                rt = type_for_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
                if rt is None:
                    raise KeyError(
                        f"the emulator does not serve {obj.get('apiVersion')} {obj.get('kind')}"
                    )
                new = copy.deepcopy(obj)
                for ref in new.get("metadata", {}).get("ownerReferences") or []:
                    ref["uid"] = uids.get(ref.get("uid"), ref.get("uid"))
                namespace = new.get("metadata", {}).get("namespace")
                made = self._server.api.create(Target(rt, namespace), new, dry_run=False)
                old_uid = obj.get("metadata", {}).get("uid")
                if old_uid:
                    uids[old_uid] = made["metadata"]["uid"]
                created.append(made)
        self.reconcile()
        return created

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> JsonObj:
        labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
        obj = {"metadata": {"name": name, "labels": labels}}
        return self._server.api.create(Target(NAMESPACES, None), obj, dry_run=False)

    def add_deployment(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int = 1,
        image: str = "app:1",
        labels: dict[str, str] | None = None,
        paused: bool = False,
        progress_deadline_seconds: int = 600,
        strategy: JsonObj | None = None,
    ) -> JsonObj:
        """A Deployment with one container named after it; labels default to `app: NAME`.

        Its first ReplicaSet (revision 1) and pods exist when this returns (pods become
        Ready after `ready_after`). With `paused=True` the Deployment is paused after that
        first rollout started, the usual state of a workload someone paused mid-life.
        """
        created = self._create(
            DEPLOYMENTS,
            manifests.deployment(
                namespace,
                name,
                replicas=replicas,
                image=image,
                labels=labels,
                progress_deadline_seconds=progress_deadline_seconds,
                strategy=strategy,
            ),
        )
        if not paused:
            return created
        target = Target(DEPLOYMENTS, namespace, name)
        paused_obj = self._server.api.patch(
            target, MERGE_PATCH, {"spec": {"paused": True}}, dry_run=False
        )
        self.reconcile()
        return paused_obj

    def add_statefulset(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int = 1,
        image: str = "app:1",
        labels: dict[str, str] | None = None,
        update_strategy: JsonObj | None = None,
        pod_management_policy: str = "OrderedReady",
    ) -> JsonObj:
        """A StatefulSet; pods `NAME-0..N-1` start in order, each once the previous is Ready."""
        return self._create(
            STATEFULSETS,
            manifests.statefulset(
                namespace,
                name,
                replicas=replicas,
                image=image,
                labels=labels,
                update_strategy=update_strategy,
                pod_management_policy=pod_management_policy,
            ),
        )

    def add_hpa(
        self,
        namespace: str,
        name: str,
        *,
        min_replicas: int = 1,
        max_replicas: int = 10,
        target: str | None = None,
        target_kind: str = "Deployment",
    ) -> JsonObj:
        """An autoscaling/v2 HPA on `target` (default: the workload called NAME)."""
        manifest = manifests.hpa(
            namespace,
            name,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            target=target,
            target_kind=target_kind,
        )
        return self._create(HPAS, manifest)

    def add_pdb(
        self,
        namespace: str,
        name: str,
        *,
        selector: dict[str, str],
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
    ) -> JsonObj:
        manifest = manifests.pdb(
            namespace,
            name,
            selector=selector,
            min_available=min_available,
            max_unavailable=max_unavailable,
        )
        return self._create(PDBS, manifest)

    def set_template_health(
        self, namespace: str, workload: str, *, image: str, healthy: bool
    ) -> None:
        """Make pods of `workload` running `image` crash-loop (or recover when healthy)."""
        self._controllers.health.set(namespace, workload, image, healthy)

    def _type(self, api_version: str, plural: str) -> ResourceType:
        rt = find_type(api_version, plural)
        if rt is None:
            raise KeyError(f"unknown resource {plural} in {api_version}")
        return rt

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> JsonObj:
        """The stored object; KeyError when it does not exist."""
        obj = self.store.get(self._type(api_version, plural), namespace, name)
        if obj is None:
            raise KeyError(f"{plural} {namespace}/{name} not found")
        return obj

    def list_objects(
        self, api_version: str, plural: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[JsonObj]:
        selection = Selection.parse(label_selector, "")
        items = self.store.list(self._type(api_version, plural), namespace)
        return [obj for obj in items if selection.matches(obj)]

    def pods(self, namespace: str, label_selector: str = "") -> list[JsonObj]:
        return self.list_objects("v1", "pods", namespace, label_selector)

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "condition"
    ) -> None:
        """Re-check `predicate` after every change; TimeoutError naming `what` if it never holds."""
        changed = asyncio.Event()

        def on_change(_event: WatchEvent) -> None:
            changed.set()

        self.store.listeners.append(on_change)
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    await changed.wait()
                    changed.clear()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}") from None
        finally:
            self.store.listeners.remove(on_change)

    def rolled_out(self, namespace: str, name: str) -> bool:
        """True when a Deployment's latest generation is fully rolled out and available."""
        d = self.get("apps/v1", "deployments", namespace, name)
        status, replicas = d.get("status") or {}, d["spec"]["replicas"]
        return bool(
            status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
        )

    async def wait_rolled_out(self, namespace: str, name: str, *, timeout_s: float = 5.0) -> None:
        await self.wait_for(
            lambda: self.rolled_out(namespace, name),
            timeout_s=timeout_s,
            what=f"deployment {namespace}/{name} to roll out",
        )
