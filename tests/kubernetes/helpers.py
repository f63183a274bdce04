"""Starting the daemon with one built-in playbook against the emulator, firing alerts through
the webhook, and reading what was recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from remediator.alertmanager import Alert
from remediator.playbook import Registry, load_file
from remediator.store.records import (
    TimerRecord,
)
from remediator_testing.alerts import alert, notification
from remediator_testing.clock import ManualClock
from remediator_testing.kube import KubeEmulator, RecordedRequest
from tests.conftest import Daemon, MakeDaemon
from tests.outcome import Outcome, read_outcome

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
# The RBAC deploy/ ships: every scenario runs as the daemon's service account holding exactly it.
SHIPPED_RBAC = ROOT / "deploy" / "base" / "rbac.yaml"
# Alerts started a while ago; resolved ones end now, so a cool-down counts from now.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

# Retries fast enough for tests, with the same shape as production's.
KUBE = {
    "poll_seconds": 0.02,
    "request_timeout_seconds": 2.0,
    "retry": {
        "attempts": 3,
        "initial_backoff_seconds": 0.01,
        "max_backoff_seconds": 0.05,
        "max_retry_after_seconds": 0.2,
    },
}


def registry(module: str) -> Registry:
    """One built-in playbook file, loaded into a fresh registry as the daemon loads it."""
    fresh = Registry()
    problem = load_file(PLAYBOOKS / f"{module}.py", fresh)
    assert problem is None, problem
    return fresh


def grant(emu: KubeEmulator, tmp: Path, manifests: list[dict[str, Any]] | None = None) -> Path:
    """Load RBAC manifests (default: the shipped ones) into the emulator and return a token
    file acting as the service account they bind (RBAC mode on)."""
    objects = manifests if manifests is not None else shipped_rbac()
    for obj in objects:
        emu.add_manifest(obj)
    subject = next(s for o in objects for s in o.get("subjects") or [])
    token = tmp / f"kube-token-{len(emu.rbac.tokens)}"
    token.write_text(emu.service_account_token(subject["namespace"], subject["name"]))
    return token


def shipped_rbac() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(SHIPPED_RBAC.read_text()) if doc]


@dataclass
class Cluster:
    emu: KubeEmulator
    make_daemon: MakeDaemon
    tmp: Path
    daemon: Daemon | None = None
    _started: tuple[str, dict[str, Any]] = ("", {})
    # The daemon's time: cool-downs, follow-ups and quiet periods pass when the test advances
    # it (the emulator's pods keep real time).
    clock: ManualClock = field(default_factory=ManualClock)

    async def start(
        self,
        module: str,
        *,
        mode: str = "auto",
        params: Mapping[str, Mapping[str, Any]] | None = None,
        guards: Mapping[str, Any] | None = None,
        kube: Mapping[str, Any] | None = None,
        rbac: list[dict[str, Any]] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Daemon:
        """The daemon with `playbooks/<module>.py`; `params` by playbook name; `extra` more
        settings (e.g. admin tokens). It acts as its service account with the `rbac`
        manifests' rules (default: the shipped ones)."""
        token = grant(self.emu, self.tmp, rbac)
        config: dict[str, Any] = {
            "mode": mode,
            "kubernetes": {
                "mode": "url",
                "url": self.emu.url,
                "token_file": str(token),
                **KUBE,
                **(kube or {}),
            },
            "playbooks": {name: {"params": dict(p)} for name, p in (params or {}).items()},
        }
        if guards is not None:
            config["guards"] = guards
        config.update(extra or {})
        self._started = (module, config)
        return await self._make()

    async def _make(self) -> Daemon:
        module, config = self._started
        self.daemon = await self.make_daemon(registry(module), config=config, clock=self.clock)
        # The test drives the durable timers (`run_timers`): the daemon's own loop is stopped,
        # so a timer never runs behind the test's back (timers are claimed once).
        await self.daemon.engine.timers.stop()
        return self.daemon

    async def restart(self) -> Daemon:
        """Stop the daemon and start it again on the same state and configuration."""
        assert self.daemon is not None, "start() first"
        await self.daemon.client.close()  # stops the engine
        return await self._make()

    async def fire(self, labels: Mapping[str, str], *, minutes: int = 0, **kw: Any) -> Outcome:
        """POST one firing alert through the webhook, wait until it was handled."""
        return await self.post(alert(labels, starts_at=START + timedelta(minutes=minutes), **kw))

    async def resolve(self, labels: Mapping[str, str], *, minutes: int = 0) -> Outcome:
        starts = START + timedelta(minutes=minutes)
        return await self.post(
            alert(labels, status="resolved", starts_at=starts, ends_at=self.clock.now())
        )

    async def post(self, payload: dict[str, Any]) -> Outcome:
        daemon = self.daemon
        assert daemon is not None, "start() first"
        status, answer = await daemon.post(notification([payload]))
        assert status == 200, answer
        await daemon.settle()
        return await self.outcome(Alert.model_validate(payload).episode_id)

    async def outcome(self, episode_id: str) -> Outcome:
        assert self.daemon is not None
        return await read_outcome(self.daemon.engine.store, episode_id)

    async def run_timers(self) -> int:
        """Run the durable timers due on the daemon's clock (scale-back, follow-ups); the
        test makes them due with `clock.advance`."""
        assert self.daemon is not None
        return await self.daemon.engine.timers.run_due()

    async def due_timers(self) -> list[TimerRecord]:
        """The durable timers due now on the daemon's clock, in the order they run."""
        assert self.daemon is not None
        return await self.daemon.engine.store.due_timers(self.clock.now(), 100)

    async def timers(self, episode_id: str, kind: str) -> list[TimerRecord]:
        assert self.daemon is not None
        found = await self.daemon.engine.store.timers_for(episode_id)
        return [t for t in found if t.kind == kind]

    def changes(self) -> list[RecordedRequest]:
        """Every mutating request the emulator received (tests add objects directly)."""
        return [r for r in self.emu.requests if r.method in ("PATCH", "POST", "PUT", "DELETE")]

    async def patch(self, path: str, body: Any) -> None:
        """Change an object as another actor (a human, a CD system) would, by merge patch."""
        async with (
            aiohttp.ClientSession() as session,
            session.patch(
                self.emu.url + path,
                json=body,
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response,
        ):
            assert response.status == 200, await response.text()

    def deployment(self, name: str, namespace: str = "shop") -> dict[str, Any]:
        return self.emu.get("apps/v1", "deployments", namespace, name)

    def replicas(self, name: str, namespace: str = "shop") -> int:
        return int(self.deployment(name, namespace)["spec"]["replicas"])


async def until(predicate: Callable[[], Any], *, timeout_s: float = 5.0, what: str = "") -> None:
    """Poll a condition on the record (which the emulator's wait_for cannot see)."""
    async with asyncio.timeout(timeout_s):
        while not await _value(predicate()):
            await asyncio.sleep(0.02)


async def _value(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def labels(alertname: str, namespace: str = "shop", **extra: str) -> dict[str, str]:
    return {"alertname": alertname, "namespace": namespace, "severity": "warning", **extra}
