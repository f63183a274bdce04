"""Process lifecycle shared by the real test servers.

Every server helper must behave the same way: a fresh temp dir, a free
loopback port chosen just before spawning (retried if someone else grabs it
first), readiness decided by asking the server itself, and shutdown by the PID
we spawned (never by name), so parallel test runs and developers' own services
are never disturbed.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

LOOPBACK = "127.0.0.1"
_PORT_ATTEMPTS = 5
_POLL_INTERVAL = 0.05
_LOG_TAIL_BYTES = 6000

T = TypeVar("T")


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


class PortClashError(ServerStartError):
    """A port was taken between picking it and the server binding it (start retries)."""


def require_binary(path: str | Path, package: str) -> Path:
    """Return ``path`` if it is an executable file, else explain which package provides it.

    Tests must fail (not skip) when a server is missing, so the message names
    the Debian package and the script that installs it.
    """
    binary = Path(path)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise RuntimeError(
            f"{binary} not found or not executable: install the Debian package "
            f"'{package}' (scripts/install-system-deps does this)"
        )
    return binary


def free_port(*, udp_too: bool = False) -> int:
    """Ask the kernel for a currently unused loopback port.

    The port is released before the server binds it, so a clash is still
    possible; callers retry on clash. ``udp_too`` also requires the UDP port
    to be free (Alertmanager's gossip uses the same port over TCP and UDP).
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port: int = tcp.getsockname()[1]
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("could not find a free loopback port")


def log_tail(path: Path, max_bytes: int = _LOG_TAIL_BYTES) -> str:
    """Last ``max_bytes`` of a log file, decoded leniently, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return "<no log file>"
    text = data.decode("utf-8", errors="replace")
    return text if size <= max_bytes else "[...]\n" + text


def _socket_inodes_listening(port: int) -> set[str]:
    inodes: set[str] = set()
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as fh:
        next(fh)
        for line in fh:
            fields = line.split()
            # fields[3] == "0A" is TCP_LISTEN in the kernel's state enum.
            if fields[1] == wanted and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def listener_owned_by(pid: int, port: int) -> bool:
    """True if process ``pid`` holds the listening socket on 127.0.0.1:``port``.

    A readiness probe alone could be answered by another server that won the
    race for the port; this ties the listener to the process we spawned.
    """
    inodes = _socket_inodes_listening(port)
    if not inodes:
        return False
    targets = {f"socket:[{inode}]" for inode in inodes}
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except (FileNotFoundError, PermissionError):
        return False
    for entry in entries:
        with contextlib.suppress(OSError):
            if os.readlink(entry) in targets:
                return True
    return False


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    body: Any = None,
    *,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """Minimal HTTP client for talking to our own loopback servers.

    Refuses anything but 127.0.0.1 so helpers can never leak traffic, and
    bypasses ``*_proxy`` environment variables, which on CI would otherwise
    route loopback requests through a proxy. JSON-encodes ``body`` when given.
    Returns (status, body) for any HTTP status, raising only on transport errors.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname != LOOPBACK:
        raise ValueError(f"refusing non-loopback URL {url!r}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (scheme checked above)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def http_json(method: str, url: str, body: Any = None, *, timeout: float = 10.0) -> Any:
    """``http_request`` that insists on a 2xx status and decodes a JSON reply."""
    status, payload = http_request(method, url, body, timeout=timeout)
    if not 200 <= status < 300:
        raise RuntimeError(
            f"{method} {url} -> HTTP {status}: {payload[:500].decode(errors='replace')}"
        )
    return json.loads(payload) if payload else None


def http_ok(url: str, *, timeout: float = 2.0) -> bool:
    """True if GET ``url`` answers 200; connection errors mean "not yet"."""
    try:
        status, _ = http_request("GET", url, timeout=timeout)
    except OSError:
        return False
    return status == 200


class ManagedServer(abc.ABC):
    """A server process we spawn in a temp dir and stop by its PID.

    Subclasses describe how to prepare the data dir, which ports to pick, the
    command line, and how to tell that the server is ready. Use either
    ``start()``/``stop()`` or ``with Server(...) as srv:``.
    """

    name: ClassVar[str]
    package: ClassVar[str]
    # The signal that asks for a clean shutdown without waiting for clients.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, *, startup_timeout: float = 30.0, stop_timeout: float = 10.0) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._base_dir: Path | None = None
        self._port: int | None = None

    # -- subclass hooks -------------------------------------------------------

    @abc.abstractmethod
    def _binaries(self) -> Sequence[Path]:
        """Binaries that must exist before anything is started."""

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Populate the fresh data dir; runs once per start(), before any port is chosen."""

    def _pick_ports(self) -> None:
        self._port = free_port()

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """Command line for the current ports."""

    @abc.abstractmethod
    def _is_ready(self) -> bool:
        """Whether the server answers its readiness probe (our process, our port)."""

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    # -- public surface -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._require_proc().pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._port

    @property
    def base_dir(self) -> Path:
        """Temp dir holding the data dir, config files and the log."""
        if self._base_dir is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._base_dir

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / f"{self.name}.log"

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} is already started (pid {self._proc.pid})")
        for binary in self._binaries():
            require_binary(binary, self.package)
        self._base_dir = Path(tempfile.mkdtemp(prefix=f"remediator-{self.name}-"))
        try:
            self.data_dir.mkdir()
            self._prepare()
            attempt = 1
            while True:
                self._pick_ports()
                try:
                    self._spawn_and_wait()
                    return self
                except PortClashError:
                    if attempt == _PORT_ATTEMPTS:
                        raise
                    attempt += 1
        except BaseException:
            self._discard_dir()
            raise

    def stop(self) -> None:
        """Stop our process by PID (polite signal, then SIGKILL) and delete the temp dir."""
        if self._proc is not None:
            self._terminate(self._proc)
            self._proc = None
        self._discard_dir()

    def stop_process(self, sig: signal.Signals | None = None) -> None:
        """Stop our process by PID (``sig``, default the polite stop signal, then SIGKILL if
        it does not end) but keep the data dir and the port: ``start_process()`` brings the
        same server back, as a restart of a real one would (an outage in the middle of a test).
        """
        proc = self._require_proc()
        if proc.poll() is None and sig is not None:
            proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)
        self._terminate(proc)
        self._proc = None

    def start_process(self) -> None:
        """Start the process ``stop_process()`` stopped, on the same data dir and port; returns
        once it is ready. ``PortClashError`` if something else took the port meanwhile."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} is still running (pid {self._proc.pid})")
        if self._base_dir is None or self._port is None:
            raise RuntimeError(f"{self.name} was never started: start() first")
        self._spawn_and_wait()

    def restart(self) -> None:
        """``stop_process()`` then ``start_process()``: same data, same port, a new PID."""
        self.stop_process()
        self.start_process()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self._proc.pid} port={self._port}" if self._proc else "stopped"
        return f"<{type(self).__name__} {state}>"

    # -- internals ------------------------------------------------------------

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._proc

    def _spawn(self, command: Sequence[str]) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {' '.join(command)}\n".encode())
            log.flush()
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                **self._popen_kwargs(),
            )

    def _spawn_and_wait(self) -> None:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        proc = self._spawn(self._command())
        self._proc = proc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            returncode = proc.poll()
            if returncode is not None:
                self._proc = None
                tail = log_tail(self.log_path)
                # Only this attempt's output counts, so a clash in an earlier
                # attempt cannot disguise a different failure as another clash.
                with self.log_path.open("rb") as log:
                    log.seek(log_start)
                    if b"address already in use" in log.read().lower():
                        raise PortClashError(
                            f"{self.name}: a port was already in use; log tail:\n{tail}"
                        )
                raise ServerStartError(
                    f"{self.name} exited with code {returncode} during startup; log tail:\n{tail}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self._terminate(proc)
                self._proc = None
                raise ServerStartError(
                    f"{self.name} not ready after {self.startup_timeout}s; "
                    f"log tail:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=self.stop_timeout)

    def _discard_dir(self) -> None:
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)


def loopback_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``predicate()`` until it returns something truthy; return that value.

    Raises TimeoutError naming ``what``. Sync on purpose: server helpers are
    used from fixtures that may run outside any event loop.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
