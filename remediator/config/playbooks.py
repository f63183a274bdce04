"""Per-playbook settings: mode, parameters, verification, GitOps policies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from remediator.config.base import Mode, Section


class PlaybookVerifySettings(Section):
    bake_seconds: float | None = Field(
        None,
        ge=0,
        description="How long after acting the verification waits; default: the playbook's own.",
    )


GitOpsPolicy = Literal["act", "escalate", "suspend"]

_NO_ARGO_SUSPEND = (
    "suspend is not supported for Argo CD: it has no switch that pauses self-heal for one "
    "object (only the whole Application's automated sync); use escalate, or act with "
    "ignoreDifferences by managedFieldsManagers (README, GitOps)"
)


class GitOpsPolicies(Section):
    """What a playbook may do to an object a GitOps controller manages, per kind of change."""

    scale: GitOpsPolicy = Field(
        "escalate",
        description="A change of replicas (the workload's scale, an HPA's minReplicas, KEDA's "
        "paused-replicas): escalate names the change to make in Git and changes nothing.",
    )
    rollback: GitOpsPolicy = Field(
        "escalate", description="A rollback (the pod template of an earlier revision)."
    )
    restart: GitOpsPolicy = Field(
        "act",
        description="A rollout restart (the `restartedAt` pod template annotation, which the "
        "controllers leave alone when it is not in Git).",
    )


class GitOpsPolicyOverrides(Section):
    scale: GitOpsPolicy | None = Field(None, description="Overrides the scale policy.")
    rollback: GitOpsPolicy | None = Field(None, description="Overrides the rollback policy.")
    restart: GitOpsPolicy | None = Field(None, description="Overrides the restart policy.")


class PlaybookGitOpsSettings(Section):
    argocd: GitOpsPolicyOverrides = Field(
        default_factory=GitOpsPolicyOverrides, description="For objects Argo CD manages."
    )
    flux: GitOpsPolicyOverrides = Field(
        default_factory=GitOpsPolicyOverrides, description="For objects Flux manages."
    )

    @model_validator(mode="after")
    def _argocd_cannot_suspend(self) -> PlaybookGitOpsSettings:
        if "suspend" in self.argocd.model_dump().values():
            raise ValueError(f"gitops.argocd: {_NO_ARGO_SUSPEND}")
        return self


class ArgoCDSettings(Section):
    policy: GitOpsPolicies = Field(
        default_factory=GitOpsPolicies, description="Policies for objects Argo CD manages."
    )
    label_tracking: bool = Field(
        False,
        description="Also take the `instance_label` label as Argo CD's mark (its `label` "
        "tracking method); off because Helm charts and other tools set that label too.",
    )
    instance_label: str = Field(
        "app.kubernetes.io/instance",
        description="Argo CD's `application.instanceLabelKey`, read under `label_tracking`.",
    )
    check_after_seconds: float = Field(
        360.0,
        gt=0,
        description="Whether a change stuck is checked this long after it (two of Argo CD's "
        "default 3-minute reconciliations).",
    )

    @model_validator(mode="after")
    def _cannot_suspend(self) -> ArgoCDSettings:
        if "suspend" in self.policy.model_dump().values():
            raise ValueError(_NO_ARGO_SUSPEND)
        return self


class FluxSettings(Section):
    policy: GitOpsPolicies = Field(
        default_factory=GitOpsPolicies, description="Policies for objects Flux manages."
    )
    check_after_seconds: float = Field(
        1200.0,
        gt=0,
        description="Whether a change stuck is checked this long after it (two reconciliations "
        "at a 10-minute interval).",
    )
    suspend_seconds: float = Field(
        3600.0,
        ge=0,
        description="Under `suspend`, the object's reconciliation is restored when the alert "
        "resolves, or after this long at the latest, even while the alert fires.",
    )


class GitOpsSettings(Section):
    """Objects a GitOps controller manages (Argo CD, Flux), known by the marks it writes on
    them; see README, GitOps."""

    argocd: ArgoCDSettings = Field(default_factory=ArgoCDSettings, description="Argo CD.")
    flux: FluxSettings = Field(default_factory=FluxSettings, description="Flux.")
    check_after_seconds: float | None = Field(
        360.0,
        gt=0,
        description="Whether a change to an object no GitOps controller marks stuck is checked "
        "this long after it; unset: not checked.",
    )


class PlaybookSettings(Section):
    enabled: bool = Field(True, description="A disabled playbook never matches.")
    mode: Mode | None = Field(None, description="Overrides the global mode for this playbook.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The playbook's parameters (see its docstring)."
    )
    verify: PlaybookVerifySettings = Field(
        default_factory=PlaybookVerifySettings, description="Its verification after acting."
    )
    gitops: PlaybookGitOpsSettings = Field(
        default_factory=PlaybookGitOpsSettings,
        description="Its GitOps policies, overriding `gitops.<controller>.policy` per kind.",
    )
