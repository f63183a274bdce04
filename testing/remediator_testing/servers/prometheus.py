"""A throwaway Prometheus 2.42 server for tests, benchmarks and playbook authors.

remediator verifies each fix by querying Prometheus, and our alert rules must
be proven to fire end to end; both need the real server evaluating real
rules against real scrapes. Intervals default to one second so scenarios
settle in seconds rather than minutes.
"""

from __future__ import annotations

import math
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from remediator_testing.servers._common import (
    LOOPBACK,
    ManagedServer,
    http_json,
    http_ok,
    listener_owned_by,
    loopback_url,
    require_binary,
)

DEFAULT_BINARY = Path("/usr/bin/prometheus")
DEFAULT_PROMTOOL = Path("/usr/bin/promtool")
PACKAGE = "prometheus"


@dataclass(frozen=True)
class Sample:
    """One element of an instant-query result."""

    labels: dict[str, str]
    value: float


def prometheus_config(
    *,
    targets: Mapping[str, Sequence[str]] | None = None,
    rule_files: Sequence[str | Path] = (),
    alertmanagers: Sequence[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> dict[str, Any]:
    """The prometheus.yml document PrometheusServer writes.

    ``targets`` maps a job name to ``["127.0.0.1:PORT", ...]``; ``alertmanagers``
    are base URLs such as ``http://127.0.0.1:9093``.
    """
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
            for job, addresses in (targets or {}).items()
        ],
        "rule_files": [str(path) for path in rule_files],
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [_alertmanager_config(url) for url in alertmanagers]}
    return config


def _alertmanager_config(url: str) -> dict[str, Any]:
    parsed = urllib.parse.urlsplit(url)
    if not parsed.netloc:
        raise ValueError(f"alertmanager URL needs scheme and host:port, got {url!r}")
    entry: dict[str, Any] = {
        "scheme": parsed.scheme or "http",
        "static_configs": [{"targets": [parsed.netloc]}],
        # Alerts must reach Alertmanager promptly even in slow CI.
        "timeout": "5s",
    }
    if parsed.path not in ("", "/"):
        entry["path_prefix"] = parsed.path
    return entry


def check_rules(*rule_files: str | Path, promtool: str | Path = DEFAULT_PROMTOOL) -> None:
    """Validate rule files with ``promtool check rules``; raise ValueError with its report."""
    binary = require_binary(promtool, PACKAGE)
    result = subprocess.run(
        [str(binary), "check", "rules", *map(str, rule_files)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"promtool check rules failed:\n{result.stdout}{result.stderr}")


class PrometheusServer(ManagedServer):
    """Prometheus on 127.0.0.1 scraping ``targets`` and evaluating ``rule_files``.

    Rule files are referenced in place (not copied), so edit them and call
    ``reload()`` to change rules mid-test. The config file is ``config_path``.
    """

    name = "prometheus"
    package = PACKAGE

    def __init__(
        self,
        *,
        targets: Mapping[str, Sequence[str]] | None = None,
        rule_files: Sequence[str | Path] = (),
        alertmanagers: Sequence[str] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        binary: str | Path = DEFAULT_BINARY,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.binary = Path(binary)
        self.extra_args = list(extra_args)
        self.config = prometheus_config(
            targets=targets,
            rule_files=[Path(path).resolve() for path in rule_files],
            alertmanagers=alertmanagers,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
        )

    @property
    def url(self) -> str:
        return loopback_url(self.port)

    @property
    def config_path(self) -> Path:
        return self.base_dir / "prometheus.yml"

    def query(self, promql: str) -> list[Sample]:
        """Instant query; a scalar result comes back as one sample without labels."""
        data = self._api("query", {"query": promql})
        result_type, result = data["resultType"], data["result"]
        if result_type == "vector":
            return [Sample(dict(item["metric"]), float(item["value"][1])) for item in result]
        if result_type == "scalar":
            return [Sample({}, float(result[1]))]
        raise ValueError(f"query {promql!r} returned a {result_type}, not a vector or scalar")

    def query_value(self, promql: str) -> float:
        """The single value of ``promql``; NaN when the result is empty.

        Raises ValueError if the query returns more than one series.
        """
        samples = self.query(promql)
        if not samples:
            return math.nan
        if len(samples) > 1:
            raise ValueError(f"query {promql!r} returned {len(samples)} series, expected one")
        return samples[0].value

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts as reported by GET /api/v1/alerts."""
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (with ``health`` and ``lastError``) from /api/v1/targets."""
        active: list[dict[str, Any]] = self._api("targets", {"state": "active"})["activeTargets"]
        return active

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Replace the config file; call ``reload()`` for Prometheus to pick it up."""
        self.config = dict(config)
        with self.config_path.open("w") as fh:
            yaml.safe_dump(self.config, fh, sort_keys=False)

    def reload(self) -> None:
        """POST /-/reload: re-read the config and every rule file; raises if they are invalid."""
        http_json("POST", f"{self.url}/-/reload")

    def _api(self, endpoint: str, params: Mapping[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        reply = http_json("GET", f"{self.url}/api/v1/{endpoint}{query}")
        return reply["data"]

    # -- ManagedServer hooks ----------------------------------------------------

    def _binaries(self) -> Sequence[Path]:
        return [self.binary]

    def _prepare(self) -> None:
        self.write_config(self.config)

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--web.enable-lifecycle",
            # Defaults (1m, 10m) would make alert delivery and restarts crawl in tests.
            "--rules.alert.resend-delay=1s",
            "--rules.alert.for-grace-period=1s",
            *self.extra_args,
        ]

    def _is_ready(self) -> bool:
        # Ownership first: it is cheap, and probing a port someone else holds
        # could hang on a listener that never answers.
        return listener_owned_by(self.pid, self.port) and http_ok(f"{self.url}/-/ready")
