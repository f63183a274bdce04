"""Who else keeps an object in shape: the GitOps controller that applied it, from its marks.

A GitOps controller puts back what Git says: Argo CD with self-heal within seconds, Flux on its
next reconcile. A change made beside it (a scale, a rollback) is undone, and a remediation that
reports success for it tells a lie. So before a change the object's own marks are read:

  * Argo CD: the annotation `argocd.argoproj.io/tracking-id`
    (`<application>:<group>/<kind>:<namespace>/<name>`; one copied onto another object does
    not count, as for Argo CD), or, under its `label` tracking method, the
    `app.kubernetes.io/instance` label (opt-in, `gitops.argocd.label_tracking`: Helm charts
    and other tools set that label too);
  * Flux: the labels `kustomize.toolkit.fluxcd.io/name` and `/namespace` (kustomize-controller,
    a Kustomization) or `helm.toolkit.fluxcd.io/name` and `/namespace` (helm-controller, a
    HelmRelease). Flux leaves an object alone while it carries
    `kustomize.toolkit.fluxcd.io/reconcile: disabled` (Kustomization) or
    `helm.toolkit.fluxcd.io/driftDetection: disabled` (HelmRelease): that is the switch the
    `suspend` policy turns, marked with `remediator/suspended-by` so that only what this
    daemon suspended is ever restored by it.

`GitOpsRules` turns the configuration into the policy for a playbook, a kind of change and an
owner (`act`, `escalate`, `suspend`), and the interval after which a change is checked again.
`FieldChange` is what a change sets, so that a human can be told the same change for Git, and
the check can tell a change undone from one still in effect. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from remediator.config import GitOpsSettings, PlaybookSettings

JsonObj = dict[str, Any]

ARGOCD, FLUX = "argocd", "flux"
TRACKING_ID = "argocd.argoproj.io/tracking-id"
KUSTOMIZE_NAME = "kustomize.toolkit.fluxcd.io/name"
KUSTOMIZE_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
HELM_NAME = "helm.toolkit.fluxcd.io/name"
HELM_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
KUSTOMIZE_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
HELM_DRIFT_DETECTION = "helm.toolkit.fluxcd.io/driftDetection"
DISABLED = "disabled"
SUSPENDED_BY = "remediator/suspended-by"

# Kinds of change (`Action.kind`): the first three are subject to a policy.
SCALE, ROLLBACK, RESTART = "scale", "rollback", "restart"
SUSPEND, RESUME = "suspend", "resume"  # the switch itself, turned by the `suspend` policy
GATED = (SCALE, ROLLBACK, RESTART)
ACT, ESCALATE = "act", "escalate"

_API_GROUPS = {
    "Deployment": "apps",
    "StatefulSet": "apps",
    "HorizontalPodAutoscaler": "autoscaling",
    "ScaledObject": "keda.sh",
}


@dataclass(frozen=True)
class Owner:
    """The GitOps controller that manages an object, as the object's marks say."""

    controller: str  # argocd | flux
    kind: str  # Application | Kustomization | HelmRelease
    name: str
    namespace: str | None
    mark: str  # the annotation or label it was known by
    suspended: bool = False  # the controller leaves the object alone now
    suspended_by: str | None = None  # the `remediator/suspended-by` mark, when it was us

    def __str__(self) -> str:
        if self.controller == ARGOCD:
            return f"Argo CD application {self.name}"
        where = f"{self.namespace}/" if self.namespace else ""
        return f"Flux {self.kind} {where}{self.name}"

    @property
    def switch(self) -> str | None:
        """The annotation that makes the controller leave one object alone (Flux only)."""
        if self.controller != FLUX:
            return None
        return KUSTOMIZE_RECONCILE if self.kind == "Kustomization" else HELM_DRIFT_DETECTION

    @property
    def suspended_elsewhere(self) -> bool:
        """Someone else turned the switch: left as it is, and never restored by us."""
        return self.suspended and self.suspended_by is None

    def describe(self) -> JsonObj:
        return {
            "controller": self.controller,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "mark": self.mark,
            "suspended": self.suspended,
            "suspended_by": self.suspended_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Owner:
        return cls(
            controller=str(data["controller"]),
            kind=str(data["kind"]),
            name=str(data["name"]),
            namespace=data.get("namespace"),
            mark=str(data.get("mark", "")),
            suspended=bool(data.get("suspended")),
            suspended_by=data.get("suspended_by"),
        )


def _marks(obj: JsonObj) -> tuple[Mapping[str, str], Mapping[str, str]]:
    meta = obj.get("metadata") or {}
    return meta.get("annotations") or {}, meta.get("labels") or {}


def _argocd(obj: JsonObj, label: str | None) -> Owner | None:
    annotations, labels = _marks(obj)
    tracking = annotations.get(TRACKING_ID)
    if tracking:
        app = _tracked_app(tracking, obj)
        if app is not None:
            return Owner(ARGOCD, "Application", app, None, f"annotation {TRACKING_ID}")
    if label is not None and labels.get(label):
        return Owner(ARGOCD, "Application", labels[label], None, f"label {label}")
    return None


def _tracked_app(tracking: str, obj: JsonObj) -> str | None:
    """The application a tracking id names, if it names this very object."""
    try:
        app, group_kind, where = tracking.split(":", 2)
        group, kind = group_kind.split("/", 1) if "/" in group_kind else ("", group_kind)
        namespace, name = where.split("/", 1) if "/" in where else ("", where)
    except ValueError:
        return None
    meta = obj.get("metadata") or {}
    api_group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    same = (
        kind == obj.get("kind")
        and name == meta.get("name")
        and namespace in ("", meta.get("namespace"))
        and group == api_group
    )
    return app if same and app else None


def _flux(obj: JsonObj) -> Owner | None:
    annotations, labels = _marks(obj)
    for kind, name_label, namespace_label, switch in (
        ("Kustomization", KUSTOMIZE_NAME, KUSTOMIZE_NAMESPACE, KUSTOMIZE_RECONCILE),
        ("HelmRelease", HELM_NAME, HELM_NAMESPACE, HELM_DRIFT_DETECTION),
    ):
        name = labels.get(name_label)
        if not name:
            continue
        off = DISABLED in (annotations.get(switch), labels.get(switch))
        ours = annotations.get(SUSPENDED_BY) if off else None
        return Owner(
            FLUX,
            kind,
            name,
            labels.get(namespace_label),
            f"label {name_label}",
            suspended=off,
            suspended_by=ours or None,
        )
    return None


@dataclass(frozen=True)
class FieldChange:
    """One field a change sets: its path in the object, its value before and after.

    A path is a list of keys; `[NAME]` selects the item of a list whose `name` is NAME (a
    container). `after` None means the field is removed."""

    path: tuple[str, ...]
    before: Any
    after: Any

    @property
    def shown(self) -> str:
        return show_path(self.path)

    def describe(self) -> JsonObj:
        return {"path": list(self.path), "before": self.before, "after": self.after}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldChange:
        return cls(tuple(str(p) for p in data["path"]), data.get("before"), data.get("after"))


def show_path(path: Sequence[str]) -> str:
    """`spec.replicas`, `spec.template.spec.containers[api].image`,
    `metadata.annotations["autoscaling.keda.sh/paused-replicas"]`."""
    out = ""
    for part in path:
        if part.startswith("[") and part.endswith("]"):
            out += part
        elif "." in part or "/" in part:
            out += f'["{part}"]'
        else:
            out += f".{part}" if out else part
    return out


def value_at(obj: Any, path: Sequence[str]) -> Any:
    """The value at `path` in `obj`; None when any step is missing."""
    for part in path:
        if part.startswith("[") and part.endswith("]"):
            wanted = part[1:-1]
            items = obj if isinstance(obj, list) else []
            obj = next((i for i in items if isinstance(i, dict) and i.get("name") == wanted), None)
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
        if obj is None:
            return None
    return obj


def _shown_value(value: Any) -> str:
    return value if isinstance(value, str) and value.strip() == value else json.dumps(value)


def git_change(fields: Iterable[FieldChange], obj: str, owner: Owner) -> str:
    """What a human should change in Git: `set spec.replicas: 5 in the manifest of Deployment
    shop/consumer, owned by Argo CD application shop-apps`."""
    steps = [
        f"remove {f.shown}" if f.after is None else f"set {f.shown}: {_shown_value(f.after)}"
        for f in fields
    ]
    kind, _, rest = obj.partition("/")
    what = ", ".join(steps) or "make the change"
    return f"{what} in the manifest of {kind} {rest}, owned by {owner}"


def api_group(kind: str) -> str:
    return _API_GROUPS.get(kind, "")


class GitOpsRules:
    """The configuration's GitOps section as answers: who owns an object, which policy a
    playbook has for a kind of change on it, when a change is checked again."""

    def __init__(
        self, settings: GitOpsSettings, playbook: Callable[[str], PlaybookSettings]
    ) -> None:
        self.settings = settings
        self._playbook = playbook  # a playbook's settings by name (`Settings.playbook`)

    def owner_of(self, obj: JsonObj) -> Owner | None:
        argocd = self.settings.argocd
        label = argocd.instance_label if argocd.label_tracking else None
        return _argocd(obj, label) or _flux(obj)

    def policy(self, playbook: str, kind: str | None, owner: Owner | None) -> str:
        """act, escalate or suspend; `act` for what no policy covers (no owner, a kind of
        change not gated, the switch itself)."""
        if owner is None or kind not in GATED:
            return ACT
        base = self.settings.argocd if owner.controller == ARGOCD else self.settings.flux
        mine = self._playbook(playbook).gitops
        override = mine.argocd if owner.controller == ARGOCD else mine.flux
        found: str = getattr(override, str(kind)) or getattr(base.policy, str(kind))
        return found

    def check_after(self, owner: Owner | None) -> float | None:
        """Seconds after a change when it is read again; None: not checked."""
        if owner is None:
            return self.settings.check_after_seconds
        if owner.controller == ARGOCD:
            return self.settings.argocd.check_after_seconds
        return self.settings.flux.check_after_seconds

    def suspends(self, playbook: str) -> bool:
        """Whether the playbook may turn Flux's switch (some kind of change has `suspend`)."""
        flux = Owner(FLUX, "Kustomization", "-", None, "-")
        return SUSPEND in self.policies(playbook, flux).values()

    def policies(self, playbook: str, owner: Owner) -> dict[str, str]:
        return {kind: self.policy(playbook, kind, owner) for kind in GATED}


def suspended(owner: Owner, mark: str) -> Owner:
    return replace(owner, suspended=True, suspended_by=mark)


__all__ = [
    "ACT",
    "ARGOCD",
    "ESCALATE",
    "FLUX",
    "GATED",
    "RESTART",
    "RESUME",
    "ROLLBACK",
    "SCALE",
    "SUSPEND",
    "SUSPENDED_BY",
    "FieldChange",
    "GitOpsRules",
    "Owner",
    "api_group",
    "git_change",
    "show_path",
    "suspended",
    "value_at",
]
