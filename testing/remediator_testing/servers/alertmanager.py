"""Throwaway Alertmanager 0.25 instances (single or an HA pair) for tests.

remediator receives Alertmanager webhooks, so its contract is whatever the
real Alertmanager sends: grouping, repeat and resolve notifications, and the
duplicate deliveries an HA pair produces. These helpers run the real binary on
loopback, with clustering off unless an HA cluster is asked for.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from remediator_testing.servers._common import (
    LOOPBACK,
    ManagedServer,
    PortClashError,
    ServerStartError,
    free_port,
    http_json,
    http_ok,
    listener_owned_by,
    log_tail,
    loopback_url,
    wait_for,
)

DEFAULT_BINARY = Path("/usr/bin/prometheus-alertmanager")
_CLUSTER_ATTEMPTS = 3

# Routes everything to a receiver that does nothing: enough to hold alerts for
# /api/v2/alerts. Pass your own config to get webhooks delivered.
NULL_CONFIG: dict[str, Any] = {
    "route": {"receiver": "null"},
    "receivers": [{"name": "null"}],
}


class AlertmanagerServer(ManagedServer):
    """Alertmanager on 127.0.0.1 with ``config`` (YAML text or a mapping).

    Remember that route timings default to minutes (group_wait 30s,
    group_interval 5m, repeat_interval 4h); set them low in test configs.
    For HA, prefer ``alertmanager_cluster()``; ``peers`` and ``cluster_port``
    are its building blocks.
    """

    name = "alertmanager"
    package = "prometheus-alertmanager"

    def __init__(
        self,
        config: str | Mapping[str, Any] | None = None,
        *,
        binary: str | Path = DEFAULT_BINARY,
        clustered: bool = False,
        cluster_port: int | None = None,
        peers: Sequence[str] = (),
        gossip_interval: str = "50ms",
        peer_timeout: str = "1s",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """``clustered`` enables gossip on ``cluster_port`` (picked freely when None)
        with ``peers`` as "127.0.0.1:PORT" addresses of the other members.

        ``peer_timeout`` is how long member N waits (times N) before sending a
        notification the others have not: the default 15s would slow HA tests.
        """
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        if config is None:
            config = NULL_CONFIG
        self.config_text = config if isinstance(config, str) else yaml.safe_dump(dict(config))
        self.binary = Path(binary)
        self.clustered = clustered or bool(peers)
        self._fixed_cluster_port = cluster_port
        self.cluster_port: int | None = None
        self.peers = list(peers)
        self.gossip_interval = gossip_interval
        self.peer_timeout = peer_timeout
        self.extra_args = list(extra_args)

    @property
    def url(self) -> str:
        return loopback_url(self.port)

    @property
    def config_path(self) -> Path:
        return self.base_dir / "alertmanager.yml"

    @property
    def cluster_address(self) -> str:
        if self.cluster_port is None:
            raise RuntimeError("alertmanager is not clustered or not started")
        return f"{LOOPBACK}:{self.cluster_port}"

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts: inject alerts as Prometheus would.

        Each alert needs ``labels``; ``annotations``, ``startsAt``, ``endsAt``
        and ``generatorURL`` are optional (RFC 3339 timestamps). Alerts are not
        gossiped between HA members (Prometheus sends to each of them), so post
        to every member to emulate that.
        """
        http_json("POST", f"{self.url}/api/v2/alerts", [dict(alert) for alert in alerts])

    def alerts(self, *, active: bool = True, silenced: bool = True) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (by default everything not yet resolved)."""
        flags = f"active={str(active).lower()}&silenced={str(silenced).lower()}"
        alerts: list[dict[str, Any]] = http_json("GET", f"{self.url}/api/v2/alerts?{flags}")
        return alerts

    def create_silence(
        self,
        matchers: Mapping[str, str],
        *,
        duration: timedelta = timedelta(hours=1),
        comment: str = "remediator test",
        created_by: str = "remediator_testing",
    ) -> str:
        """POST /api/v2/silences with equality matchers; returns the silence ID.

        Silences (unlike alerts) are gossiped, so in a cluster they show up on
        every member.
        """
        now = datetime.now(UTC)
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in matchers.items()
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + duration).isoformat(),
            "comment": comment,
            "createdBy": created_by,
        }
        reply = http_json("POST", f"{self.url}/api/v2/silences", body)
        silence_id: str = reply["silenceID"]
        return silence_id

    def silences(self) -> list[dict[str, Any]]:
        """GET /api/v2/silences (all states)."""
        silences: list[dict[str, Any]] = http_json("GET", f"{self.url}/api/v2/silences")
        return silences

    def status(self) -> dict[str, Any]:
        """GET /api/v2/status: config, uptime and cluster membership."""
        status: dict[str, Any] = http_json("GET", f"{self.url}/api/v2/status")
        return status

    # -- ManagedServer hooks ----------------------------------------------------

    def _binaries(self) -> Sequence[Path]:
        return [self.binary]

    def _prepare(self) -> None:
        self.config_path.write_text(self.config_text)

    def _pick_ports(self) -> None:
        super()._pick_ports()
        if self.clustered:
            self.cluster_port = self._fixed_cluster_port or free_port(udp_too=True)

    def _command(self) -> list[str]:
        command = [
            str(self.binary),
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
        ]
        if self.clustered:
            # Advertising loopback explicitly: memberlist would otherwise look for
            # a private IP and refuse to start on hosts with only public ones.
            command += [
                f"--cluster.listen-address={self.cluster_address}",
                f"--cluster.advertise-address={self.cluster_address}",
                f"--cluster.gossip-interval={self.gossip_interval}",
                f"--cluster.peer-timeout={self.peer_timeout}",
                "--cluster.pushpull-interval=1s",
                *(f"--cluster.peer={peer}" for peer in self.peers),
            ]
        else:
            # Empty disables HA; the default would listen on 0.0.0.0:9094.
            command.append("--cluster.listen-address=")
        return command + self.extra_args

    def _is_ready(self) -> bool:
        # Ownership first: it is cheap, and probing a port someone else holds
        # could hang on a listener that never answers.
        return listener_owned_by(self.pid, self.port) and http_ok(f"{self.url}/-/ready")


class AlertmanagerCluster:
    """N gossiping Alertmanagers on loopback, each peered with all the others."""

    def __init__(
        self,
        size: int = 2,
        config: str | Mapping[str, Any] | None = None,
        *,
        binary: str | Path = DEFAULT_BINARY,
        ready_timeout: float = 30.0,
        member_configs: Sequence[str | Mapping[str, Any]] | None = None,
        **member_kwargs: Any,
    ) -> None:
        """``member_kwargs`` go to every AlertmanagerServer (e.g. ``peer_timeout``).

        ``member_configs`` gives each member its own configuration instead of ``config`` (one
        per member, in order): e.g. each peer delivering to a different replica of a receiver.
        """
        if size < 2:
            raise ValueError("an HA cluster needs at least two members")
        if member_configs is not None and len(member_configs) != size:
            raise ValueError(f"member_configs: {len(member_configs)} configs for {size} members")
        self.size = size
        self.config = config
        self.member_configs = list(member_configs) if member_configs is not None else None
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.member_kwargs = member_kwargs
        self.members: list[AlertmanagerServer] = []

    @property
    def urls(self) -> list[str]:
        return [member.url for member in self.members]

    def start(self) -> AlertmanagerCluster:
        """Start every member and wait until each sees all peers and has settled."""
        attempt = 1
        while True:
            try:
                self._start_members()
            except PortClashError:
                # Members name each other's gossip ports up front, so a clash on
                # one of them means starting the whole cluster on fresh ports.
                self.stop()
                if attempt == _CLUSTER_ATTEMPTS:
                    raise
                attempt += 1
                continue
            except BaseException:
                self.stop()
                raise
            return self

    def _start_members(self) -> None:
        cluster_ports = [free_port(udp_too=True) for _ in range(self.size)]
        addresses = [f"{LOOPBACK}:{port}" for port in cluster_ports]
        for index, port in enumerate(cluster_ports):
            member = AlertmanagerServer(
                self.config if self.member_configs is None else self.member_configs[index],
                binary=self.binary,
                clustered=True,
                cluster_port=port,
                peers=[address for i, address in enumerate(addresses) if i != index],
                **self.member_kwargs,
            )
            member.start()
            self.members.append(member)
        for member in self.members:
            try:
                wait_for(
                    functools.partial(self._settled, member),
                    timeout=self.ready_timeout,
                    what=f"alertmanager {member.url} to settle in a {self.size}-member cluster",
                )
            except TimeoutError as err:
                raise ServerStartError(
                    f"{err}; status: {member.status()['cluster']}; log tail:\n"
                    + log_tail(member.log_path)
                ) from None

    def _settled(self, member: AlertmanagerServer) -> bool:
        cluster = member.status()["cluster"]
        return bool(cluster["status"] == "ready" and len(cluster.get("peers") or []) == self.size)

    def stop(self) -> None:
        """Stop every member by PID."""
        for member in reversed(self.members):
            member.stop()
        self.members.clear()

    def __enter__(self) -> AlertmanagerCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def alertmanager_cluster(
    size: int = 2, config: str | Mapping[str, Any] | None = None, **kwargs: Any
) -> Iterator[list[AlertmanagerServer]]:
    """``with alertmanager_cluster(2, cfg) as (am1, am2):`` — an HA cluster's members."""
    with AlertmanagerCluster(size, config, **kwargs) as cluster:
        yield cluster.members
