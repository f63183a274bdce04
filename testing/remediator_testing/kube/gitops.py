"""GitOps controllers in the emulator: Argo CD with self-heal, and Flux, as far as they touch
the objects a remediation changes.

`emu.gitops.argocd("shop-apps")` is an Argo CD application with automated sync and self-heal;
`emu.gitops.flux("apps")` is a Flux Kustomization (`helm=True`: a HelmRelease). `manage(...)`
puts an existing object under one: it is marked as the controller marks what it applies (the
`argocd.argoproj.io/tracking-id` annotation, or the `app.kubernetes.io/instance` label with
`label_tracking=True`; Flux's `kustomize.toolkit.fluxcd.io/name` and `/namespace` labels, or
the `helm.toolkit.fluxcd.io` ones), and its `spec` as it is then becomes the desired state in
Git. `commit(...)` changes Git (a merge patch of the desired state), as a human would.

On every controller pass each application compares what it manages with Git. A field Git sets
that differs is drift (merge-patch semantics: what Git does not set, such as the restart
annotation or another manager's annotations, is left alone, as a three-way merge or a
server-side apply leaves it). Drift seen for `revert_after` seconds is put back (Git's values
merged over the object) and recorded in `reverts`. Flux leaves an object alone while it
carries `kustomize.toolkit.fluxcd.io/reconcile: disabled` (a HelmRelease:
`helm.toolkit.fluxcd.io/driftDetection: disabled`), and records in `held_back` each drift it
did not revert for that reason, so a test can wait for proof that it held back instead of
sleeping (and `passes` counts its comparisons, to wait for proof that it left a change alone).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from remediator_testing.kube.patching import merge_patch
from remediator_testing.kube.resources import ResourceType, find_type
from remediator_testing.kube.store import Store

JsonObj = dict[str, Any]
Key = tuple[ResourceType, str, str]

TRACKING_ID = "argocd.argoproj.io/tracking-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
KUSTOMIZE_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
HELM_DRIFT_DETECTION = "helm.toolkit.fluxcd.io/driftDetection"


def contains(obj: Any, desired: Any) -> bool:
    """Every field `desired` sets has that value in `obj` (lists compare whole)."""
    if not isinstance(desired, dict):
        return bool(obj == desired)
    if not isinstance(obj, dict):
        return False
    return all(contains(obj.get(key), value) for key, value in desired.items())


@dataclass
class GitOpsApp:
    """One Argo CD application or Flux Kustomization/HelmRelease."""

    controller: str  # argocd | flux
    name: str
    namespace: str
    revert_after: float
    label_tracking: bool = False
    helm: bool = False
    reverts: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    passes: int = 0  # comparisons with Git so far
    _store: Store | None = None
    _git: dict[Key, JsonObj] = field(default_factory=dict)
    _drift_since: dict[Key, float] = field(default_factory=dict)
    _holding: set[Key] = field(default_factory=set)

    def manage(self, api_version: str, plural: str, namespace: str, name: str) -> JsonObj:
        """Mark the object as this application's and take its spec as the state in Git."""
        assert self._store is not None, "create applications with emu.gitops"
        rt = find_type(api_version, plural)
        if rt is None:
            raise KeyError(f"unknown resource {plural} in {api_version}")
        obj = self._store.require(rt, namespace, name)
        meta = obj["metadata"]
        if self.controller == "argocd" and self.label_tracking:
            meta.setdefault("labels", {})[INSTANCE_LABEL] = self.name
        elif self.controller == "argocd":
            tracking = f"{self.name}:{rt.group}/{rt.kind}:{namespace}/{name}"
            meta.setdefault("annotations", {})[TRACKING_ID] = tracking
        else:
            prefix = "helm" if self.helm else "kustomize"
            labels = meta.setdefault("labels", {})
            labels[f"{prefix}.toolkit.fluxcd.io/name"] = self.name
            labels[f"{prefix}.toolkit.fluxcd.io/namespace"] = self.namespace
        updated = self._store.update(rt, obj)
        self._git[(rt, namespace, name)] = {"spec": copy.deepcopy(obj.get("spec") or {})}
        return updated

    def commit(
        self, api_version: str, plural: str, namespace: str, name: str, change: JsonObj
    ) -> None:
        """Change the desired state in Git (a merge patch of it)."""
        rt = find_type(api_version, plural)
        assert rt is not None
        key = (rt, namespace, name)
        self._git[key] = merge_patch(self._git[key], change)

    def desired(self, api_version: str, plural: str, namespace: str, name: str) -> JsonObj:
        rt = find_type(api_version, plural)
        assert rt is not None
        return copy.deepcopy(self._git[(rt, namespace, name)])

    def _switched_off(self, obj: JsonObj) -> bool:
        if self.controller != "flux":
            return False
        switch = HELM_DRIFT_DETECTION if self.helm else KUSTOMIZE_RECONCILE
        meta = obj.get("metadata") or {}
        marks = [
            (meta.get("annotations") or {}).get(switch),
            (meta.get("labels") or {}).get(switch),
        ]
        return "disabled" in marks

    def sync(self, store: Store, now: float) -> None:
        self.passes += 1
        for key, desired in self._git.items():
            rt, namespace, name = key
            obj = store.get(rt, namespace, name)
            if obj is None or contains(obj, desired):
                self._drift_since.pop(key, None)
                self._holding.discard(key)
                continue
            what = f"{rt.kind}/{namespace}/{name}"
            if self._switched_off(obj):
                self._drift_since.pop(key, None)
                if key not in self._holding:
                    self._holding.add(key)
                    self.held_back.append(what)
                continue
            self._holding.discard(key)
            since = self._drift_since.setdefault(key, now)
            if now - since < self.revert_after:
                continue
            store.update(rt, merge_patch(obj, desired))
            self._drift_since.pop(key, None)
            self.reverts.append(what)


class GitOpsControllers:
    """Every GitOps application of the emulator; run by the controller manager."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.apps: list[GitOpsApp] = []

    def argocd(
        self, name: str, *, revert_after: float = 0.0, label_tracking: bool = False
    ) -> GitOpsApp:
        """An Argo CD application with automated sync and self-heal."""
        app = GitOpsApp("argocd", name, "argocd", revert_after, label_tracking=label_tracking)
        return self._add(app)

    def flux(
        self,
        name: str,
        *,
        namespace: str = "flux-system",
        revert_after: float = 0.0,
        helm: bool = False,
    ) -> GitOpsApp:
        """A Flux Kustomization (or with `helm=True` a HelmRelease) that corrects drift."""
        return self._add(GitOpsApp("flux", name, namespace, revert_after, helm=helm))

    def _add(self, app: GitOpsApp) -> GitOpsApp:
        app._store = self._store
        self.apps.append(app)
        return app

    def sync(self, store: Store, now: float) -> None:
        for app in self.apps:
            app.sync(store, now)


__all__ = ["GitOpsApp", "GitOpsControllers", "contains"]
