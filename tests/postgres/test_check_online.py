"""`remediator check --online`, as a user runs it: the database grants of every configured
database (against real PostgreSQL roles) and Kubernetes reachability and read access (against
the emulator), reported all at once before the first incident would find out."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from remediator.testing.kube import KubeEmulator
from remediator.testing.servers import PostgresServer, free_port
from tests.postgres.conftest import Databases, Roles
from tests.postgres.helpers import database

pytestmark = pytest.mark.servers


async def check_online(tmp_path: Path, config: dict[str, Any]) -> tuple[int, str, str]:
    path = tmp_path / "config.yml"
    path.write_text(json.dumps({"state": {"path": str(tmp_path / "state.db")}, **config}))
    # A subprocess, so the emulator keeps answering in this event loop meanwhile.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator",
        "check",
        "--online",
        "--config",
        str(path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_every_missing_grant_and_namespace_is_reported_at_once(
    tmp_path: Path,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    emu: KubeEmulator,
) -> None:
    emu.add_namespace("payments")
    emu.faults.add(
        path_regex="/namespaces/payments/",
        method="GET",
        status=403,
        message="deployments is forbidden: User cannot list",
    )
    db = databases.target
    config = {
        "databases": {
            "good": database(postgres_server, roles.remediator, db),
            "bare": database(postgres_server, roles.bare, db),
            "down": {
                "dsn": f"postgresql://x:y@127.0.0.1:{free_port()}/x",
                "connect_timeout_seconds": 2,
            },
        },
        "kubernetes": {"mode": "url", "url": emu.url, "retry": {"attempts": 1}},
        "guards": {"blast_radius": {"allow_namespaces": ["shop", "payments", "kube-system"]}},
    }

    code, out, err = await check_online(tmp_path, config)

    assert code == 2, (out, err)
    lines = out.splitlines()
    assert (
        f"  ok   database good: role {roles.remediator.name!r} connects and holds every grant"
        in lines
    )
    [bare] = [line for line in lines if "database bare" in line]
    assert bare.startswith("  FAIL")
    for fragment in (
        "lacks pg_read_all_stats",
        "lacks pg_signal_backend",
        f"GRANT pg_read_all_stats, pg_signal_backend TO {roles.bare.name}",
    ):
        assert fragment in bare
    [down] = [line for line in lines if "database down" in line]
    assert down.startswith("  FAIL") and "DatabaseUnreachable" in down
    assert any(line.startswith("  ok   kubernetes: the API server answers") for line in lines)
    assert (
        "  ok   kubernetes namespace shop: deployments, statefulsets, pods can be listed" in lines
    )
    [payments] = [line for line in lines if "namespace payments" in line]
    assert payments.startswith("  FAIL") and "403 Forbidden" in payments
    assert "kube-system" not in out  # denied: out of scope, not checked
    assert "3 online check(s) failed" in err
    assert "y@127.0.0.1" not in out + err  # the DSN's secret is never printed


async def test_all_good_passes_and_an_unreachable_api_server_fails(
    tmp_path: Path,
    postgres_server: PostgresServer,
    roles: Roles,
    databases: Databases,
    emu: KubeEmulator,
) -> None:
    db = databases.target
    config: dict[str, Any] = {
        "databases": {"good": database(postgres_server, roles.remediator, db)},
        "kubernetes": {"mode": "url", "url": emu.url, "retry": {"attempts": 1}},
    }
    code, out, err = await check_online(tmp_path, config)
    assert code == 0, (out, err)
    assert "  ok   kubernetes all namespaces: deployments, statefulsets, pods can be listed" in out

    config["kubernetes"]["url"] = f"http://127.0.0.1:{free_port()}"
    code, out, err = await check_online(tmp_path, config)
    assert code == 2
    assert "FAIL kubernetes: the API server does not answer: GET /version" in out
