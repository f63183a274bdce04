"""Several `remediator serve` processes on one configuration: the replicas of an HA deployment.

Failover is only shown by real processes: a replica SIGKILLed in the middle of an action, or
frozen by SIGSTOP for longer than its lease and woken by SIGCONT, is another process from the
replica that takes over, sharing only the state database (`state.backend: postgres`). `Replicas`
writes one config file, starts N `python -m remediator serve` on it, each on its own free
127.0.0.1 port (`REMEDIATOR_SERVER__PORT`, the environment winning over the file) and with its
own `HOSTNAME` (`replica-0`, `replica-1`, ...: the name a replica registers under), and waits
for each one's `/readyz`. Every process is signalled and stopped by the PID we spawned, never by
name, and all of them are stopped when the group stops.

    async with Replicas(config, count=2) as group:
        status, headers, reply = await group[0].post(payload, token=TOKEN)
        group[0].kill()               # SIGKILL
        group[1].freeze(); group[1].thaw()   # SIGSTOP, SIGCONT
        newcomer = await group.add()  # one more replica (a restarted pod joins as a new one)

The blocking waits (readiness, exit) run on a thread, so servers of the caller's event loop
(the Kubernetes emulator, fake Slack and PagerDuty) keep answering meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import aiohttp

from remediator_testing.servers._common import (
    LOOPBACK,
    ManagedServer,
    http_ok,
    listener_owned_by,
    log_tail,
    loopback_url,
)

__all__ = ["ReplicaProcess", "Replicas"]

JsonObj = dict[str, Any]


class ReplicaProcess(ManagedServer):
    """One `remediator serve` on `config_path`, listening on its own loopback port.

    `start()` (blocking; `await group.add()` from async code) returns once `/readyz` answers 200
    from our process. `kill()`, `freeze()`, `thaw()` and `signal()` act on the PID we spawned;
    `stop()` thaws a frozen process first, asks it to stop (SIGTERM), SIGKILLs it if it does
    not, and deletes its temp dir (its log is kept beside the config file).
    """

    name = "remediator"
    package = "remediator"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(
        self,
        config_path: Path,
        *,
        hostname: str,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.config_path = config_path
        self.hostname = hostname
        self.extra_env = dict(env or {})
        self._exit_code: int | None = None
        self.frozen = False

    # -- what a test reads ---------------------------------------------------------

    @property
    def url(self) -> str:
        return loopback_url(self.port)

    @property
    def log_path(self) -> Path:
        # Beside the shared config, not in the process's temp dir: it outlives `stop()`.
        return self.config_path.parent / f"{self.hostname}.log"

    @property
    def returncode(self) -> int | None:
        """The exit status once the process ended (negative: the signal that ended it)."""
        if self._proc is not None:
            return self._proc.poll()
        return self._exit_code

    def log(self, max_bytes: int = 8000) -> str:
        """The tail of the replica's output (its structured log)."""
        return log_tail(self.log_path, max_bytes)

    # -- signals, by PID -------------------------------------------------------------

    def signal(self, sig: signal.Signals) -> None:
        proc = self._require_proc()
        if proc.poll() is None:
            proc.send_signal(sig)

    def kill(self) -> int:
        """SIGKILL: the process dies at once, in whatever it was doing; returns its status."""
        proc = self._require_proc()
        if proc.poll() is None:
            proc.kill()
        return proc.wait(timeout=self.stop_timeout)

    def freeze(self) -> None:
        """SIGSTOP: the process stops running (a long GC pause, a frozen VM) until `thaw()`."""
        self.signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: a frozen process runs again from where it stopped."""
        self.signal(signal.SIGCONT)
        self.frozen = False

    def wait_exit(self, timeout: float) -> int:
        """Block until the process ends by itself; its exit status (TimeoutExpired if not)."""
        return self._require_proc().wait(timeout=timeout)

    # -- ManagedServer hooks -----------------------------------------------------------

    def _binaries(self) -> Sequence[Path]:
        return [Path(sys.executable)]

    def _prepare(self) -> None:
        if not self.config_path.is_file():
            raise FileNotFoundError(f"no config file at {self.config_path}")

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "remediator", "serve", "--config", str(self.config_path)]

    def _popen_kwargs(self) -> dict[str, Any]:
        env = {
            **os.environ,
            **self.extra_env,
            "HOSTNAME": self.hostname,
            # The environment wins over the file: every replica shares the file, not the port.
            "REMEDIATOR_SERVER__HOST": LOOPBACK,
            "REMEDIATOR_SERVER__PORT": str(self.port),
        }
        return {"env": env}

    def _is_ready(self) -> bool:
        return listener_owned_by(self.pid, self.port) and http_ok(f"{self.url}/readyz")

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.frozen = False
        super()._terminate(proc)
        self._exit_code = proc.returncode

    def __repr__(self) -> str:
        state = "stopped" if self._proc is None else f"pid={self._proc.pid} port={self._port}"
        return f"<ReplicaProcess {self.hostname} {state}>"

    # -- HTTP, from the caller's event loop ------------------------------------------------

    async def post(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        token: str | None = None,
        path: str = "/webhook",
        within: float = 10.0,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """POST a webhook body (a mapping is JSON-encoded); (status, headers, body).

        Connection errors propagate (a killed replica refuses the connection)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as session,
            session.post(f"{self.url}{path}", data=data, headers=headers) as resp,
        ):
            return resp.status, dict(resp.headers), await resp.read()

    async def get_json(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.url}{path}", headers=headers) as resp,
        ):
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


class Replicas:
    """`count` replicas of `config` (a mapping, written once as the group's config file)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        count: int = 2,
        workdir: Path | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if count < 1:
            raise ValueError("a group needs at least one replica")
        self.config = dict(config)
        self.count = count
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="remediator-replicas-"))
        self.config_path = self.workdir / "remediator.json"  # JSON is YAML
        self.members: list[ReplicaProcess] = []

    def __getitem__(self, index: int) -> ReplicaProcess:
        return self.members[index]

    def __iter__(self) -> Iterator[ReplicaProcess]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def running(self) -> list[ReplicaProcess]:
        """The replicas whose process is alive (frozen ones included)."""
        return [member for member in self.members if member.running]

    @property
    def responsive(self) -> list[ReplicaProcess]:
        """The replicas alive and not frozen: those that can answer."""
        return [member for member in self.running if not member.frozen]

    def by_pid(self, pid: int) -> ReplicaProcess:
        for member in self.members:
            if member.running and member.pid == pid:
                return member
        raise KeyError(f"no running replica has pid {pid}")

    def by_name(self, name: str) -> ReplicaProcess:
        """The replica a registered name (`HOSTNAME` and pid, in some form) belongs to."""
        for member in self.running:
            if member.hostname in name and str(member.pid) in name:
                return member
        raise KeyError(f"no running replica is called {name!r}")

    async def start(self) -> Self:
        self.config_path.write_text(json.dumps(self.config, indent=2))
        try:
            # One at a time: each applies (or finds) the schema before the next one starts, as
            # a rolling deployment does; concurrent starts are what `start_together` is for.
            for _ in range(self.count):
                await self.add()
        except BaseException:
            await self.stop()
            raise
        return self

    async def start_together(self, count: int) -> list[ReplicaProcess]:
        """Start `count` more replicas at once (racing for the schema and registration)."""
        return list(await asyncio.gather(*(self.add() for _ in range(count))))

    async def add(self) -> ReplicaProcess:
        """Start one more replica on the same config; returns it once it is ready."""
        member = ReplicaProcess(
            self.config_path,
            hostname=f"replica-{len(self.members)}",
            env=self.env,
            startup_timeout=self.startup_timeout,
            stop_timeout=self.stop_timeout,
        )
        self.members.append(member)
        await asyncio.to_thread(member.start)
        return member

    async def stop(self) -> None:
        """Stop every replica by its PID (thawing frozen ones first), in parallel."""
        await asyncio.gather(*(asyncio.to_thread(member.stop) for member in self.members))
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self, max_bytes: int = 4000) -> str:
        """Every replica's log tail, for a failure message."""
        return "\n".join(
            f"--- {member!r} (exit {member.returncode}):\n{member.log(max_bytes)}"
            for member in self.members
        )

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
