"""`remediator replay`: recorded notifications through the real pipeline against an emulator.

Users test their playbooks the way we test ours: the configured playbooks and guards, in auto
mode, against the Kubernetes API-server emulator seeded with their own objects (for example
`kubectl get deploy,rs,pod,pdb,hpa -o yaml`). It prints what happens, call by call, and the
resulting change of every object. Nothing real is touched: the emulator is the only cluster,
and databases, Prometheus, Slack and PagerDuty are left out of the configuration.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from remediator.alertmanager import PayloadError, parse_notification
from remediator.config import (
    DispatchSettings,
    EscalationSettings,
    KubernetesSettings,
    Mode,
    PrometheusSettings,
    ReportSettings,
    Settings,
)
from remediator.engine.assembly import load_registry, playbook_params
from remediator.store.records import RunState
from remediator_testing.kube import KubeEmulator
from remediator_testing.kube.emulator import EmulatorError
from remediator_testing.kube.resources import RESOURCE_TYPES
from remediator_testing.local import LocalDaemon

__all__ = ["ReplayError", "replay", "replay_settings", "seed"]

# Runs that end like this make `replay` exit non-zero: a playbook raised or a guard said no.
BAD_RUNS = {RunState.FAILED.value, RunState.REFUSED.value, RunState.INTERRUPTED.value}
NOISE = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")
SKIPPED_KINDS = {"Event", "Lease"}
Key = tuple[str, str, str]  # kind, namespace, name


class ReplayError(Exception):
    """Input that cannot be replayed (a bad payload, a bad objects file)."""


def replay_settings(settings: Settings, state_dir: Path, kubeconfig: Path) -> Settings:
    """The user's playbooks, parameters and guards; auto mode; the emulator as the only
    cluster; nothing that reaches a real system."""
    playbooks = {
        name: pb.model_copy(update={"mode": None}) for name, pb in settings.playbooks.items()
    }
    return settings.model_copy(
        update={
            "mode": Mode.AUTO,
            "playbooks": playbooks,
            "state": settings.state.model_copy(update={"path": state_dir / "replay.db"}),
            "kubernetes": KubernetesSettings(
                mode="kubeconfig", kubeconfig=kubeconfig, poll_seconds=0.05
            ),
            "databases": {},
            "prometheus": PrometheusSettings(),
            "reports": ReportSettings(),
            "escalation": EscalationSettings(),
            "dispatch": DispatchSettings(),
        }
    )


def _objects(documents: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            yield from _objects(doc["items"])
        else:
            yield doc


def seed(emulator: KubeEmulator, path: Path) -> int:
    """Create every object of a YAML file (documents or `kind: List`); returns how many."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ReplayError(f"{path}: {exc}") from None
    objects = list(_objects(documents))
    namespaces = {
        o.get("metadata", {}).get("namespace") for o in objects if o.get("kind") != "Namespace"
    }
    existing = {n["metadata"]["name"] for n in emulator.list_objects("v1", "namespaces")}
    for namespace in sorted(n for n in namespaces if n and n not in existing):
        emulator.add_namespace(namespace)
    objects = [
        o
        for o in objects
        if not (o.get("kind") == "Namespace" and o.get("metadata", {}).get("name") in existing)
    ]
    try:
        created = emulator.load(objects)
    except (KeyError, EmulatorError) as exc:
        raise ReplayError(f"{path}: {exc}") from None
    except Exception as exc:  # the API server's refusal of one object (invalid, duplicate)
        raise ReplayError(f"{path}: cannot create the objects: {exc}") from None
    return len(created)


def _snapshot(emulator: KubeEmulator) -> dict[Key, dict[str, Any]]:
    found: dict[Key, dict[str, Any]] = {}
    for rt in RESOURCE_TYPES:
        if rt.kind in SKIPPED_KINDS:
            continue
        for obj in emulator.store.list(rt):
            meta = obj.get("metadata", {})
            found[(rt.kind, meta.get("namespace", ""), meta["name"])] = obj
    return found


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in NOISE}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _owned(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("ownerReferences"))


def diff_objects(before: dict[Key, dict[str, Any]], after: dict[Key, dict[str, Any]]) -> list[str]:
    """What changed in the cluster: a unified diff per changed object; objects a controller
    made or removed (pods, ReplicaSets) as one line each."""
    lines: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        kind, namespace, name = key
        where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        old, new = before.get(key), after.get(key)
        if old is None and new is not None:
            lines.append(f"  + created {where}")
        elif new is None and old is not None:
            lines.append(f"  - deleted {where}")
        elif old is not None and new is not None and not _owned(new):
            a = yaml.safe_dump(_clean(old), sort_keys=True).splitlines()
            b = yaml.safe_dump(_clean(new), sort_keys=True).splitlines()
            if a != b:
                lines.append(f"  ~ changed {where}:")
                diff = difflib.unified_diff(a, b, "before", "after", n=1, lineterm="")
                lines.extend(f"      {d}" for d in diff)
    return lines


@dataclass
class Outcome:
    exit_code: int = 0
    problems: list[str] = field(default_factory=list)


def _load_payload(path: Path) -> bytes:
    try:
        body = path.read_bytes()
        parse_notification(body)
    except OSError as exc:
        raise ReplayError(f"{path}: {exc.strerror}") from None
    except PayloadError as exc:
        details = "; ".join(f"{e['loc']}: {e['msg']}" for e in exc.errors)
        raise ReplayError(f"{path}: {exc.message}{': ' + details if details else ''}") from None
    return body


async def replay(
    payloads: list[Path], *, settings: Settings, cluster: Path | None, out: TextIO
) -> int:
    """Deliver each payload in order and print what happened; 0 when every run ended without
    a failure or a refusal, 1 otherwise."""
    bodies = [(p, _load_payload(p)) for p in payloads]
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="remediator-replay-") as tmp:
        emulator = KubeEmulator(tick=0.02, ready_after=0.1, crash_interval=0.1)
        await emulator.start()
        try:
            kubeconfig = emulator.kubeconfig(Path(tmp) / "kubeconfig")
            if cluster is not None:
                print(f"seeded {seed(emulator, cluster)} object(s) from {cluster}", file=out)
            run_settings = replay_settings(settings, Path(tmp), kubeconfig)
            registry, problems = load_registry(run_settings)
            params, param_problems = playbook_params(registry, run_settings)
            if problems + param_problems:
                raise ReplayError("; ".join(problems + param_problems))
            async with LocalDaemon(run_settings, registry, params) as daemon:
                for path, body in bodies:
                    await _deliver(daemon, emulator, path, body, out, outcome)
        finally:
            await emulator.stop()
    if outcome.problems:
        print(f"\n{len(outcome.problems)} problem(s):", file=out)
        for problem in outcome.problems:
            print(f"  - {problem}", file=out)
    return outcome.exit_code


async def _deliver(
    daemon: LocalDaemon,
    emulator: KubeEmulator,
    path: Path,
    body: bytes,
    out: TextIO,
    outcome: Outcome,
) -> None:
    store = daemon.engine.store
    before = _snapshot(emulator)
    seen_calls = {e.id: len(await store.calls_for(e.id)) for e in await store.list_episodes()}
    status, answer = await daemon.post(body)
    print(f"\n== {path} -> HTTP {status}", file=out)
    if status >= 300:
        outcome.exit_code = 1
        outcome.problems.append(f"{path}: the daemon answered {status}: {answer}")
        return
    await daemon.settle()
    emulator.reconcile()
    notification = parse_notification(body)
    for alert in notification.alerts:
        episode = await store.get_episode(alert.episode_id)
        print(f"-- {alert.alertname} [{alert.status}] episode {alert.episode_id}", file=out)
        if episode is None:
            print("   not recorded", file=out)
            continue
        for decision in await store.decisions_for(episode.id):
            who = f" {decision.playbook}" if decision.playbook else ""
            print(f"   decision {decision.kind}{who}: {decision.reason}", file=out)
        calls = (await store.calls_for(episode.id))[seen_calls.get(episode.id, 0) :]
        for call in calls:
            print(f"   call {call['verb']} {call['resource']} {call['object']}", file=out)
        for action in await store.actions_for(episode.id):
            print(
                f"   action [{action.state}] {action.verb} {action.resource} {action.object}: "
                f"{action.summary}",
                file=out,
            )
            if action.body:
                print(f"          body {json.dumps(action.body, sort_keys=True)}", file=out)
            if action.error:
                print(f"          error {action.error}", file=out)
        for run in await store.runs_for(episode.id):
            line = f"   run {run.id} {run.playbook} on {run.target_key}: {run.state}"
            print(line + (f" ({run.error})" if run.error else ""), file=out)
            if run.state in BAD_RUNS:
                outcome.exit_code = 1
                outcome.problems.append(
                    f"{alert.alertname} {run.playbook} on {run.target_key}: {run.state}"
                    + (f": {run.error}" if run.error else "")
                )
        for escalation in await store.escalations_for(episode.id):
            print(f"   escalation: {escalation.reason}", file=out)
    changes = diff_objects(before, _snapshot(emulator))
    print("-- cluster changes:" if changes else "-- cluster: no change", file=out)
    for line in changes:
        print(line, file=out)
