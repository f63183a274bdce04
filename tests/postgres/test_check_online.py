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

from remediator.engine.rbac import manifests
from remediator.playbook.access import Rule
from remediator_testing.kube import KubeEmulator
from remediator_testing.servers import PostgresServer, free_port
from tests.kubernetes.helpers import grant, shipped_rbac
from tests.postgres.conftest import Databases, Roles
from tests.postgres.helpers import database

pytestmark = pytest.mark.servers


def shipped_rules() -> frozenset[Rule]:
    [role] = [o for o in shipped_rbac() if o["kind"] == "ClusterRole"]
    return frozenset(
        Rule(group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    )


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
    # The daemon's service account holds the playbooks' rules in shop only (a Role there),
    # and in payments only what restart-on-down needs: the rest is named as missing.
    shop = manifests(shipped_rules(), ("shop",))
    partial = frozenset(
        r for r in shipped_rules() if r.group == "apps" and "deployments" in r.resource
    )
    payments = manifests(partial, ("payments",))
    token = grant(emu, tmp_path, shop + payments)
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
        "kubernetes": {
            "mode": "url",
            "url": emu.url,
            "token_file": str(token),
            "retry": {"attempts": 1},
        },
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
    count = len(shipped_rules())
    assert (
        f"  ok   kubernetes namespace shop: every rule the enabled playbooks need is granted "
        f"({count} rules)" in lines
    )
    [payments_line] = [line for line in lines if "namespace payments" in line]
    assert payments_line.startswith("  FAIL kubernetes namespace payments: may not ")
    for rule in shipped_rules():
        assert (str(rule) in payments_line) is (rule not in partial), rule
    assert "grant what `remediator rbac` prints" in payments_line
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
    assert (
        "  ok   kubernetes all namespaces: every rule the enabled playbooks need is granted" in out
    )

    config["kubernetes"]["url"] = f"http://127.0.0.1:{free_port()}"
    code, out, err = await check_online(tmp_path, config)
    assert code == 2
    assert "FAIL kubernetes: the API server does not answer: GET /version" in out
