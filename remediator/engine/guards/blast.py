"""Blast radius: what a single action, run or episode may touch, whatever the alert says.

Alert labels are input from the outside: a crafted or broken alert must not widen the scope. So
the namespace of the run's target is checked against the allow and deny lists when the target is
resolved, before any playbook code runs (`scope_refusal`, called by `engine/pipeline.choose`),
and again here, for the target and the touched object, immediately before every action (an
object found through the target, or a step such as pg-idle-in-transaction's restart, may lie
elsewhere); an action must name exactly one object, and the facts in `Action.change` (see
`remediator.playbook.changes`) are bounded: replicas within [min, max] and a bounded step, pods
per workload per episode (the playbook's declared budget, under the ceiling), database sessions
per run. A count of zero or less is refused too: "zero does not mean all".
PodDisruptionBudgets are the Kubernetes playbooks' part: they evict through the Eviction API,
which answers 429 when a budget forbids it.

The counts are ceilings, not reasons to refuse a whole run: `allowance` tells a playbook how
much is left before it acts, so it takes that many (the oldest sessions, the first pods) and
reports the rest; only an action past what is left is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from remediator.config import BlastRadiusSettings
from remediator.playbook import Action, ActionRefused, RunInfo, Target
from remediator.playbook.budget import PER_REPLICA
from remediator.playbook.changes import COUNTED, PODS, REPLICAS, SESSIONS, WORKLOAD_REPLICAS
from remediator.store import Store
from remediator.store.records import ActionRecord, ActionState

NAME = "blast_radius"
_REAL = {ActionState.INTENT, ActionState.SUCCEEDED, ActionState.FAILED, ActionState.INTERRUPTED}


def _refuse(reason: str) -> ActionRefused:
    return ActionRefused(NAME, reason)


def _any_match(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def namespace_refusal(namespace: str, settings: BlastRadiusSettings) -> str | None:
    """Why nothing in `namespace` may be touched (the deny list wins), or None if it may."""
    if _any_match(namespace, settings.deny_namespaces):
        return f"namespace {namespace!r} is denied"
    if settings.allow_namespaces and not _any_match(namespace, settings.allow_namespaces):
        return f"namespace {namespace!r} is not in the allow list"
    return None


def scope_refusal(target: Target, settings: BlastRadiusSettings) -> str | None:
    """Why a resolved target lies outside the configured scope, or None if it is inside."""
    return None if target.namespace is None else namespace_refusal(target.namespace, settings)


def _count(change: dict[str, Any], key: str) -> int:
    value = change[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(f"change {key!r} must be a whole number, got {value!r}")
    if value <= 0:
        raise _refuse(f"{key} = {value}: an empty or unbounded selection (zero does not mean all)")
    return value


def _counted(actions: Iterable[ActionRecord], key: str, run: RunInfo, *, same_run: bool) -> int:
    """What earlier actions already touched: real ones, plus this run's own dry-run ones (so a
    shadow run shows the refusal the real run would get)."""
    total = 0
    for record in actions:
        if same_run and record.run_id != run.run_id:
            continue
        counts = record.state in _REAL or (
            run.dry_run and record.run_id == run.run_id and record.state == ActionState.WOULD
        )
        value = record.change.get(key)
        if counts and isinstance(value, int) and not isinstance(value, bool):
            total += value
    return total


class BlastRadiusGuard:
    name = NAME

    def __init__(self, store: Store, settings: BlastRadiusSettings) -> None:
        self._store = store
        self._settings = settings

    async def check(self, run: RunInfo, action: Action) -> None:
        for target in (run.target, action.target):
            if not target.name.strip():
                raise _refuse(f"{target.kind} with an empty name: zero does not mean all")
            if target.namespace is not None:
                self._check_namespace(target.namespace)
        change = dict(action.change)
        if REPLICAS in change:
            self._check_replicas(change[REPLICAS])
        counts = {key: _count(change, key) for key in COUNTED if key in change}
        if not counts:
            return
        history = await self._store.actions_for(run.episode_id)
        s = self._settings
        if PODS in counts:
            limit, why = self._pod_limit(run, change.get(WORKLOAD_REPLICAS))
            before = self._pods_before(history, run)
            if before + counts[PODS] > limit:
                raise _refuse(
                    f"{before} pod(s) of {run.target.key} already restarted in this episode; "
                    f"{counts[PODS]} more exceeds {limit} per episode ({why})"
                )
        if SESSIONS in counts:
            before = _counted(history, SESSIONS, run, same_run=True)
            if before + counts[SESSIONS] > s.max_sessions_per_run:
                raise _refuse(
                    f"{before + counts[SESSIONS]} database sessions in one run exceeds "
                    f"{s.max_sessions_per_run}"
                )

    async def allowance(self, run: RunInfo, key: str) -> int | None:
        """How many more of `key` this run may take now (never below zero); None: unbounded
        here. For a per-replica pod budget the replicas are only known with the action, so
        this is the ceiling's share."""
        if key not in (PODS, SESSIONS):
            return None
        history = await self._store.actions_for(run.episode_id)
        if key == PODS:
            limit, _ = self._pod_limit(run, None, planning=True)
            return max(limit - self._pods_before(history, run), 0)
        before = _counted(history, SESSIONS, run, same_run=True)
        return max(self._settings.max_sessions_per_run - before, 0)

    @staticmethod
    def _pods_before(history: list[ActionRecord], run: RunInfo) -> int:
        workload = [a for a in history if a.target_key == run.target.key]
        return _counted(workload, PODS, run, same_run=False)

    def _pod_limit(self, run: RunInfo, replicas: Any, *, planning: bool = False) -> tuple[int, str]:
        """Pods of the run's workload one episode may touch, and why: the playbook's budget,
        never above the ceiling. `planning` (`allowance`, before any action): a per-replica
        budget is bounded by the ceiling alone until an action says the replicas."""
        ceiling = self._settings.max_pods_per_episode
        capped = f"ceiling guards.blast_radius.max_pods_per_episode = {ceiling}"
        declared = run.budget.pods
        if declared == PER_REPLICA:
            if replicas is None and planning:
                return ceiling, f"the playbook's budget: one per replica; {capped}"
            if replicas is None:  # what the action does not say cannot widen the budget
                return 1, (
                    f"the playbook's budget is one per replica, but the action does not say "
                    f"how many replicas ({WORKLOAD_REPLICAS}); {capped}"
                )
            if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
                raise _refuse(f"change {WORKLOAD_REPLICAS!r} must be a count >= 1: {replicas!r}")
            budget, what = replicas, f"one per replica, {replicas}"
        else:
            assert isinstance(declared, int)
            budget, what = declared, f"{declared} per episode"
        return min(budget, ceiling), f"the playbook's budget: {what}; {capped}"

    def _check_namespace(self, namespace: str) -> None:
        refusal = namespace_refusal(namespace, self._settings)
        if refusal is not None:
            raise _refuse(refusal)

    def _check_replicas(self, value: Any) -> None:
        s = self._settings
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        ):
            raise _refuse(f"change {REPLICAS!r} must be [before, after] counts, got {value!r}")
        before, after = value
        if after > s.max_replicas:
            raise _refuse(f"{after} replicas exceeds the cap of {s.max_replicas}")
        if after < s.min_replicas:
            raise _refuse(f"{after} replicas is below the floor of {s.min_replicas}")
        if abs(after - before) > s.max_scale_step:
            raise _refuse(f"scaling {before} -> {after} exceeds the step cap of {s.max_scale_step}")
