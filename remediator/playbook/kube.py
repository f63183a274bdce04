"""The `kube=` keyword: the Kubernetes API, bound to one run.

Reads are recorded with `run.record_call` (verb, API path, object); every change is an
`Action` with the exact API path and request body, carrying the change facts the guards check
(`changes.REPLICAS`, `changes.PODS`), and goes through `run.act`: in shadow mode it is recorded
and not sent. A missing object or a state the change must not be made in (a paused Deployment,
no earlier revision) is an `ActionRefused` with the reason, before anything is touched.

Every object touched is named by the run's target or found through it (its pods, its
ReplicaSets, the autoscaler whose `scaleTargetRef` names it), and every Action's target carries
the namespace, so the blast-radius guard sees where each change lands.

Each change of a workload, an HPA or a ScaledObject passes the GitOps gate
(`playbook/gitops_gate.py`): the Action carries its kind (scale, rollback, restart), the GitOps
controller the object's marks name, and the fields it sets, so the guard can apply the policy
and the engine can check later that the change stuck.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from remediator.clients.kube import JsonObj, KubeClient, KubeError
from remediator.clients.kube.resources import (
    DEPLOYMENTS,
    EVICTION,
    HPAS,
    JSON_PATCH,
    PODS,
    REPLICASETS,
    SCALE,
    SCALEDOBJECTS,
    STATEFULSETS,
    Resource,
)
from remediator.playbook import workloads as w
from remediator.playbook.access import Rule, needs, on_workload
from remediator.playbook.changes import PODS as PODS_CHANGED
from remediator.playbook.changes import REPLICAS, WORKLOAD_REPLICAS
from remediator.playbook.context import Action, ActionRefused, Run
from remediator.playbook.gitops import (
    DISABLED,
    RESTART,
    RESUME,
    ROLLBACK,
    SUSPEND,
    SUSPENDED_BY,
    FieldChange,
    GitOpsRules,
    Owner,
    value_at,
)
from remediator.playbook.gitops import SCALE as SCALING
from remediator.playbook.gitops_gate import GitOpsGate, suspend_summary
from remediator.playbook.targets import Target

_WORKLOADS: dict[str, Resource] = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS}
# What a gated change can touch, by kind: the objects a GitOps controller may hold in shape.
_OBJECTS: dict[str, Resource] = {
    **_WORKLOADS,
    "HorizontalPodAutoscaler": HPAS,
    "ScaledObject": SCALEDOBJECTS,
}


def refused(reason: str) -> ActionRefused:
    """The playbook cannot act on this target as it is; nothing was changed."""
    return ActionRefused("precondition", reason)


@dataclass(frozen=True)
class Autoscaler:
    """What owns a workload's replica count, if not the workload itself."""

    kind: Literal["hpa", "keda"]
    name: str
    obj: JsonObj

    @property
    def hpa_bounds(self) -> tuple[int, int]:
        s = w.spec(self.obj)
        return int(s.get("minReplicas", 1)), int(s.get("maxReplicas", 1))

    @property
    def paused_replicas(self) -> str | None:
        return w.annotations_of(self.obj).get(w.KEDA_PAUSED_REPLICAS)


@dataclass(frozen=True)
class Rollout:
    done: bool
    reason: str  # why it is not done: stalled, deadline, or shadow mode
    state: JsonObj

    def describe(self) -> JsonObj:
        return {"done": self.done, "reason": self.reason, **self.state}


class Kube:
    def __init__(self, run: Run, client: KubeClient, gitops: GitOpsRules | None = None) -> None:
        self._run = run
        self._client = client
        self._gate = GitOpsGate(gitops, run)
        # The objects a gated change may touch, as last read (their GitOps marks).
        self._read: dict[str, JsonObj] = {}

    # -- reads ---------------------------------------------------------------------------

    def _keep(self, resource: Resource, found: JsonObj | None) -> JsonObj | None:
        if found is not None and resource in _OBJECTS.values():
            meta = w.meta(found)
            self._read[f"{resource.kind}/{meta.get('namespace')}/{meta.get('name')}"] = found
        return found

    async def _get(self, resource: Resource, namespace: str, name: str) -> JsonObj | None:
        await self._run.record_call(
            "get", resource.display(namespace, name), f"{resource.kind}/{namespace}/{name}"
        )
        return self._keep(resource, await self._client.find(resource, namespace, name))

    async def _object(self, resource: Resource, namespace: str, name: str) -> JsonObj:
        """The object a change is about to touch: as this run last read it, else read now."""
        found = self._read.get(f"{resource.kind}/{namespace}/{name}")
        if found is None:
            found = await self._get(resource, namespace, name)
        if found is None:
            raise ActionRefused("target", f"{resource.kind}/{namespace}/{name} does not exist")
        return found

    async def _list(
        self, resource: Resource, namespace: str, selector: str | None = None
    ) -> list[JsonObj]:
        await self._run.record_call(
            "list",
            resource.display(namespace),
            f"{resource.kind}/{namespace}",
            {"labelSelector": selector} if selector else None,
        )
        found = await self._client.list_objects(resource, namespace, label_selector=selector)
        for obj in found:
            self._keep(resource, obj)
        return found

    @needs(on_workload("get"))
    async def workload(self, target: Target) -> JsonObj:
        """The Deployment or StatefulSet the target names; refused when it does not exist."""
        resource = _WORKLOADS.get(target.kind)
        if resource is None or target.namespace is None:
            raise refused(f"{target.key} is not a namespaced Deployment or StatefulSet")
        found = await self._get(resource, target.namespace, target.name)
        if found is None:
            raise ActionRefused("target", f"{target.key} does not exist")
        return found

    @needs(Rule("", "pods", "get"))
    async def pod(self, namespace: str, name: str) -> JsonObj | None:
        return await self._get(PODS, namespace, name)

    @needs(Rule("", "pods", "list"), when={"Deployment": (Rule("apps", "replicasets", "list"),)})
    async def pods(self, workload: JsonObj) -> list[JsonObj]:
        """The pods the workload controls (directly, or through its ReplicaSets)."""
        namespace = str(w.meta(workload)["namespace"])
        pods = await self._list(PODS, namespace, w.match_labels_selector(workload))
        if workload.get("kind") == "StatefulSet":
            return [p for p in pods if w.controlled_by(p, workload)]
        owned = {w.meta(rs).get("uid") for rs in await self.replicasets(workload)}
        return [p for p in pods if (w.controller(p) or {}).get("uid") in owned]

    @needs(Rule("apps", "replicasets", "list"))
    async def replicasets(self, deployment: JsonObj) -> list[JsonObj]:
        namespace = str(w.meta(deployment)["namespace"])
        found = await self._list(REPLICASETS, namespace, w.match_labels_selector(deployment))
        return [rs for rs in found if w.controlled_by(rs, deployment)]

    @needs(Rule("apps", "replicasets", "list"))
    async def history(self, deployment: JsonObj) -> w.History:
        return w.history(deployment, await self.replicasets(deployment))

    @needs(Rule("", "pods", "get"), Rule("apps", "replicasets", "get"))
    async def deployment_of_pod(self, namespace: str, pod_name: str) -> tuple[JsonObj, str]:
        """The pod and the name of the Deployment that owns it (pod -> ReplicaSet ->
        Deployment, by controller references); refused when there is no such chain."""
        pod = await self.pod(namespace, pod_name)
        if pod is None:
            raise ActionRefused("target", f"Pod/{namespace}/{pod_name} does not exist")
        ref = w.controller(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            raise ActionRefused(
                "target", f"Pod/{namespace}/{pod_name} is not owned by a ReplicaSet"
            )
        replicaset = await self._get(REPLICASETS, namespace, str(ref.get("name")))
        owner = w.controller(replicaset) if replicaset is not None else None
        if owner is None or owner.get("kind") != "Deployment":
            raise ActionRefused(
                "target", f"Pod/{namespace}/{pod_name} is not owned by a Deployment"
            )
        return pod, str(owner.get("name"))

    @needs(
        Rule("keda.sh", "scaledobjects", "list"),
        Rule("autoscaling", "horizontalpodautoscalers", "list"),
    )
    async def autoscaler(self, target: Target) -> Autoscaler | None:
        """The KEDA ScaledObject or the HPA whose scaleTargetRef names the workload. KEDA
        first: it drives its own HPA (`keda-hpa-<name>`), which must not be touched."""
        namespace = str(target.namespace)
        try:
            scaled = await self._list(SCALEDOBJECTS, namespace)
        except KubeError as exc:
            if not exc.not_found:  # 404: KEDA is not installed in this cluster
                raise
            scaled = []
        for obj in scaled:
            if _targets(obj, target):
                return Autoscaler("keda", str(w.meta(obj)["name"]), obj)
        for obj in await self._list(HPAS, namespace):
            if _targets(obj, target):
                return Autoscaler("hpa", str(w.meta(obj)["name"]), obj)
        return None

    # Only what the patching method itself reads back on a conflict (its `get` rules).
    @needs(
        on_workload("get"),
        on_workload("get", "scale"),
        Rule("autoscaling", "horizontalpodautoscalers", "get"),
        Rule("keda.sh", "scaledobjects", "get"),
    )
    async def applied(self, verb: str, resource: str, body: object) -> bool | None:
        """Whether a recorded merge patch of a workload, its scale, an HPA or a ScaledObject
        is in effect now (every field it sets has that value, every field it removes is
        gone); None for any other change (an eviction, a JSON patch), which a read cannot
        attribute."""
        if verb != "patch" or not isinstance(body, dict):
            return None
        for kind in (DEPLOYMENTS, STATEFULSETS, HPAS, SCALEDOBJECTS):
            found = re.fullmatch(
                rf"{re.escape(kind.prefix)}/namespaces/([^/]+)/{kind.plural}/([^/]+)(/{SCALE})?",
                resource,
            )
            if found is None:
                continue
            namespace, name, scale = found.groups()
            await self._run.record_call("get", resource, f"{kind.kind}/{namespace}/{name}")
            try:
                now = await self._client.get(kind, namespace, name, SCALE if scale else None)
            except KubeError as exc:
                if exc.not_found:
                    return False
                raise
            return _contains(now, body)
        return None

    # -- changes -------------------------------------------------------------------------

    # get on the workload itself: its GitOps marks. Turning Flux's switch on it (`suspend`)
    # patches it too: `remediator rbac` adds that where the configuration asks for it.
    @needs(on_workload("patch", "scale"), on_workload("get", "scale"), on_workload("get"))
    async def scale(self, target: Target, replicas: int, *, before: int) -> JsonObj | None:
        """Set the workload's replicas through its scale subresource."""
        resource, namespace = _WORKLOADS[target.kind], str(target.namespace)
        body = {"spec": {"replicas": replicas}}
        obj = await self._object(resource, namespace, target.name)
        owner = await self._gate.admit(obj, target, SCALING, self._suspender(resource, target))

        def still(scale: JsonObj) -> str | None:
            now = int(w.spec(scale).get("replicas", 0))
            return None if now in (before, replicas) else f"replicas are {now}, not {before}"

        action = Action(
            "patch",
            resource.display(namespace, target.name, SCALE),
            target,
            f"scale {target.key} from {before} to {replicas} replicas",
            body=body,
            change={REPLICAS: [before, replicas]},
            kind=SCALING,
            owner=owner,
            fields=(FieldChange(("spec", "replicas"), before, replicas),),
        )
        return await self._run.act(
            action,
            lambda: self._client.patch(
                resource, namespace, target.name, body, subresource=SCALE, precondition=still
            ),
        )

    @needs(
        Rule("autoscaling", "horizontalpodautoscalers", "patch"),
        Rule("autoscaling", "horizontalpodautoscalers", "get"),
    )
    async def set_hpa_min_replicas(
        self,
        workload: Target,
        hpa: str,
        min_replicas: int,
        *,
        before: int,
        replicas: tuple[int, int],
    ) -> JsonObj | None:
        """Move the HPA's floor (the HPA then scales the workload up to it). `replicas` is
        the workload's count before and after, for the guards."""
        namespace = str(workload.namespace)
        body = {"spec": {"minReplicas": min_replicas}}
        target = Target("HorizontalPodAutoscaler", hpa, namespace)
        obj = await self._object(HPAS, namespace, hpa)
        owner = await self._gate.admit(obj, target, SCALING, self._suspender(HPAS, target))

        def still(obj: JsonObj) -> str | None:
            now = int(w.spec(obj).get("minReplicas", 1))
            return None if now in (before, min_replicas) else f"minReplicas is {now}, not {before}"

        action = Action(
            "patch",
            HPAS.display(namespace, hpa),
            target,
            f"set minReplicas of HPA {namespace}/{hpa} (scaling {workload.key}) from {before} "
            f"to {min_replicas}",
            body=body,
            change={REPLICAS: list(replicas)},
            kind=SCALING,
            owner=owner,
            fields=(FieldChange(("spec", "minReplicas"), before, min_replicas),),
        )
        return await self._run.act(
            action, lambda: self._client.patch(HPAS, namespace, hpa, body, precondition=still)
        )

    @needs(Rule("keda.sh", "scaledobjects", "patch"), Rule("keda.sh", "scaledobjects", "get"))
    async def set_keda_paused_replicas(
        self,
        workload: Target,
        scaled_object: str,
        value: int | None,
        *,
        before: str | None,
        replicas: tuple[int, int],
    ) -> JsonObj | None:
        """Set (or with None remove) the ScaledObject's `autoscaling.keda.sh/paused-replicas`:
        KEDA then holds the workload at that count instead of autoscaling it."""
        namespace = str(workload.namespace)
        wanted = None if value is None else str(value)
        body = {"metadata": {"annotations": {w.KEDA_PAUSED_REPLICAS: wanted}}}
        target = Target("ScaledObject", scaled_object, namespace)
        obj = await self._object(SCALEDOBJECTS, namespace, scaled_object)
        owner = await self._gate.admit(obj, target, SCALING, self._suspender(SCALEDOBJECTS, target))

        def still(obj: JsonObj) -> str | None:
            now = w.annotations_of(obj).get(w.KEDA_PAUSED_REPLICAS)
            return None if now in (before, wanted) else f"paused-replicas is {now!r}"

        what = f"set to {wanted}" if wanted is not None else "removed"
        action = Action(
            "patch",
            SCALEDOBJECTS.display(namespace, scaled_object),
            target,
            f"paused-replicas of ScaledObject {namespace}/{scaled_object} (scaling "
            f"{workload.key}) {what}",
            body=body,
            change={REPLICAS: list(replicas)},
            kind=SCALING,
            owner=owner,
            fields=(
                FieldChange(("metadata", "annotations", w.KEDA_PAUSED_REPLICAS), before, wanted),
            ),
        )
        return await self._run.act(
            action,
            lambda: self._client.patch(
                SCALEDOBJECTS, namespace, scaled_object, body, precondition=still
            ),
        )

    @needs(on_workload("get"), on_workload("patch"))
    async def rollout_restart(self, target: Target) -> str | None:
        """`kubectl rollout restart`: stamp the pod template with `restartedAt`, so the
        controller replaces every pod under the Deployment's rolling update limits. Refused
        for a paused Deployment (the stamp would wait there, unapplied). Returns the stamp."""
        deployment = await self.workload(target)
        if w.spec(deployment).get("paused"):
            raise refused(f"{target.key} is paused; a rollout restart would not roll out")
        namespace = str(target.namespace)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {w.RESTARTED_AT: stamp}}}}}
        resource = _WORKLOADS[target.kind]
        owner = await self._gate.admit(
            deployment, target, RESTART, self._suspender(resource, target)
        )
        path = ("spec", "template", "metadata", "annotations", w.RESTARTED_AT)
        action = Action(
            "patch",
            resource.display(namespace, target.name),
            target,
            f"rollout restart {target.key}",
            body=body,
            kind=RESTART,
            owner=owner,
            fields=(FieldChange(path, value_at(deployment, path), stamp),),
        )
        result = await self._run.act(
            action,
            lambda: self._client.patch(
                resource, namespace, target.name, body, precondition=_not_paused
            ),
        )
        return None if result is None else stamp

    @needs(
        Rule("apps", "deployments", "get"),
        Rule("apps", "deployments", "patch"),
        Rule("apps", "replicasets", "list"),
    )
    async def rollback(self, target: Target) -> w.History:
        """`kubectl rollout undo`: restore the pod template of the previous revision that runs
        different code (a JSON patch replacing `spec.template`). Refused when the Deployment
        is paused or has no such revision. Returns the history it rolled back along."""
        deployment = await self.workload(target)
        if w.spec(deployment).get("paused"):
            raise refused(f"{target.key} is paused; resume it before rolling back")
        found = await self.history(deployment)
        if found.previous is None or found.current is None:
            raise refused(f"{target.key} has no earlier revision running different code")
        namespace = str(target.namespace)
        template = w.rollback_template(found.previous)
        body = [{"op": "replace", "path": "/spec/template", "value": template}]
        current = w.revision(found.current)
        owner = await self._gate.admit(
            deployment, target, ROLLBACK, self._suspender(DEPLOYMENTS, target)
        )

        def still(fresh: JsonObj) -> str | None:
            if w.spec(fresh).get("paused"):
                return "the Deployment was paused"
            now = w.revision(fresh)
            return None if now == current else f"its revision is now {now}, not {current}"

        action = Action(
            "patch",
            DEPLOYMENTS.display(namespace, target.name),
            target,
            f"roll back {target.key} from revision {current} "
            f"({', '.join(w.images(found.current['spec']['template']))}) to revision "
            f"{w.revision(found.previous)} "
            f"({', '.join(w.images(found.previous['spec']['template']))})",
            body=body,
            kind=ROLLBACK,
            owner=owner,
            fields=_image_changes(deployment, template),
        )
        await self._run.act(
            action,
            lambda: self._client.patch(
                DEPLOYMENTS,
                namespace,
                target.name,
                body,
                patch_type=JSON_PATCH,
                precondition=still,
            ),
        )
        return found

    @needs(Rule("", "pods/eviction", "create"))
    async def evict(
        self, workload: Target, pod: JsonObj, *, replicas: int | None = None
    ) -> JsonObj | None:
        """Evict one pod of the workload through the Eviction API, so PodDisruptionBudgets
        apply; pinned to the pod's uid, so a replacement with the same name (StatefulSet) is
        never evicted by a retried request. A budget's refusal raises `EvictionBlocked`.
        `replicas`: the workload's replica count as read, for a playbook whose pod budget is
        one per replica (`budget.PER_REPLICA`)."""
        namespace, name = str(w.meta(pod)["namespace"]), str(w.meta(pod)["name"])
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": {"preconditions": {"uid": w.meta(pod)["uid"]}},
        }
        action = Action(
            "create",
            PODS.display(namespace, name, EVICTION),
            Target("Pod", name, namespace),
            f"evict pod {namespace}/{name} of {workload.key}",
            body=body,
            change={PODS_CHANGED: 1}
            if replicas is None
            else {PODS_CHANGED: 1, WORKLOAD_REPLICAS: replicas},
        )

        async def call() -> JsonObj:
            try:
                return await self._client.create(PODS, namespace, name, EVICTION, body)
            except KubeError as exc:
                if exc.not_found or exc.conflict:  # gone, or already replaced: nothing to evict
                    return {"evicted": False, "reason": exc.message}
                if exc.blocked_by_budget:
                    raise EvictionBlocked(exc) from None
                raise

        return await self._run.act(action, call)

    def _suspender(
        self, resource: Resource, target: Target
    ) -> Callable[[Owner, str], Awaitable[JsonObj | None]]:
        """Turn the owner's switch on the object (policy `suspend`): one Action of its own."""

        async def suspend(owner: Owner, mark: str) -> JsonObj | None:
            assert owner.switch is not None, "only Flux has a switch per object"
            namespace = str(target.namespace)
            body = {"metadata": {"annotations": {owner.switch: DISABLED, SUSPENDED_BY: mark}}}
            action = Action(
                "patch",
                resource.display(namespace, target.name),
                target,
                suspend_summary(owner, target.key, mark),
                body=body,
                kind=SUSPEND,
                owner=owner,
            )
            return await self._run.act(
                action, lambda: self._client.patch(resource, namespace, target.name, body)
            )

        return suspend

    # Only ever called by the engine for a change a gated method made: covered by its rules.
    @needs(
        on_workload("get"),
        on_workload("patch"),
        Rule("autoscaling", "horizontalpodautoscalers", "get"),
        Rule("autoscaling", "horizontalpodautoscalers", "patch"),
        Rule("keda.sh", "scaledobjects", "get"),
        Rule("keda.sh", "scaledobjects", "patch"),
    )
    async def resume(self, target: Target, owner: Owner, mark: str) -> bool:
        """Restore the owner's reconciliation of the object if it is still suspended with
        `mark` (this daemon's run did it, and nobody changed it since); False otherwise."""
        resource, namespace = _OBJECTS[target.kind], str(target.namespace)
        found = await self._get(resource, namespace, target.name)
        if found is None or w.annotations_of(found).get(SUSPENDED_BY) != mark:
            return False
        assert owner.switch is not None
        body = {"metadata": {"annotations": {owner.switch: None, SUSPENDED_BY: None}}}

        def still(obj: JsonObj) -> str | None:
            now = w.annotations_of(obj).get(SUSPENDED_BY)
            return None if now in (mark, None) else f"suspended by {now!r} now"

        action = Action(
            "patch",
            resource.display(namespace, target.name),
            target,
            f"restore {owner}'s reconciliation of {target.key}",
            body=body,
            kind=RESUME,
            owner=owner,
        )
        result = await self._run.act(
            action,
            lambda: self._client.patch(resource, namespace, target.name, body, precondition=still),
        )
        return result is not None

    @needs(
        on_workload("get"),
        Rule("autoscaling", "horizontalpodautoscalers", "get"),
        Rule("keda.sh", "scaledobjects", "get"),
    )
    async def current(self, target: Target) -> JsonObj | None:
        """The object a change touched, as it is now (None: deleted)."""
        resource = _OBJECTS[target.kind]
        return await self._get(resource, str(target.namespace), target.name)

    # -- waiting ---------------------------------------------------------------------------

    @needs(on_workload("get"))
    async def wait_rollout(self, target: Target, deadline_seconds: float) -> Rollout:
        """Poll the Deployment until its rollout is complete, stalls (ProgressDeadlineExceeded)
        or the deadline passes. In shadow mode nothing rolled out: returns at once."""
        if self._run.dry_run:
            return Rollout(False, "shadow mode: nothing was changed", {})
        resource, namespace = _WORKLOADS[target.kind], str(target.namespace)
        await self._run.record_call(
            "watch",
            resource.display(namespace, target.name),
            target.key,
            {"until": "rolled out", "deadline_seconds": deadline_seconds},
        )
        deadline = time.monotonic() + deadline_seconds
        while True:
            found = await self._client.find(resource, namespace, target.name)
            if found is None:
                return Rollout(False, f"{target.key} was deleted", {})
            state = w.rollout_state(found)
            if state.done:
                return Rollout(True, "", _rollout_facts(found))
            if state.failed:
                return Rollout(False, f"{state.failed}: {state.waiting_for}", _rollout_facts(found))
            if time.monotonic() >= deadline:
                return Rollout(
                    False,
                    f"not rolled out within {deadline_seconds:g} s: waiting for "
                    f"{state.waiting_for}",
                    _rollout_facts(found),
                )
            await asyncio.sleep(self._client.poll_seconds)

    @needs(Rule("", "pods", "get"))
    async def wait_pod_ready(
        self, namespace: str, name: str, *, replaces: str, deadline_seconds: float
    ) -> JsonObj | None:
        """Poll until a pod called `name` other than uid `replaces` is Ready; None when the
        deadline passes first. In shadow mode returns None at once."""
        if self._run.dry_run:
            return None
        await self._run.record_call(
            "watch",
            PODS.display(namespace, name),
            f"Pod/{namespace}/{name}",
            {"until": "replaced and Ready", "deadline_seconds": deadline_seconds},
        )
        deadline = time.monotonic() + deadline_seconds
        while True:
            pod = await self._client.find(PODS, namespace, name)
            if pod is not None and w.meta(pod).get("uid") != replaces and w.is_ready(pod):
                return pod
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(self._client.poll_seconds)


class EvictionBlocked(KubeError):
    """A PodDisruptionBudget does not allow evicting the pod now."""

    def __init__(self, error: KubeError) -> None:
        super().__init__(
            error.status,
            error.reason,
            f"refused by a PodDisruptionBudget: {error.message}",
            what=error.what,
            causes=error.causes,
        )


def _targets(autoscaler: JsonObj, target: Target) -> bool:
    ref = w.spec(autoscaler).get("scaleTargetRef") or {}
    return bool(ref.get("name") == target.name and ref.get("kind", "Deployment") == target.kind)


def _contains(obj: object, patch: object) -> bool:
    """Merge-patch semantics: `patch` is in effect in `obj`."""
    if not isinstance(patch, dict):
        return obj == patch
    if not isinstance(obj, dict):
        return False
    return all(
        (key not in obj or obj[key] is None) if value is None else _contains(obj.get(key), value)
        for key, value in patch.items()
    )


def _image_changes(deployment: JsonObj, template: JsonObj) -> tuple[FieldChange, ...]:
    """The container images a rollback puts back, by container name."""
    changes = []
    for container in (template.get("spec") or {}).get("containers") or []:
        path = ("spec", "template", "spec", "containers", f"[{container.get('name')}]", "image")
        changes.append(FieldChange(path, value_at(deployment, path), container.get("image")))
    return tuple(changes)


def _not_paused(deployment: JsonObj) -> str | None:
    return "the Deployment was paused" if w.spec(deployment).get("paused") else None


def _rollout_facts(deployment: JsonObj) -> JsonObj:
    s = w.status(deployment)
    return {
        "revision": w.revision(deployment),
        "replicas": w.spec(deployment).get("replicas"),
        "updated": s.get("updatedReplicas", 0),
        "available": s.get("availableReplicas", 0),
    }


__all__ = ["Autoscaler", "EvictionBlocked", "Kube", "Rollout", "refused"]
