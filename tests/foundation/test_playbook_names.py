"""Hyphenated playbook names from the environment: `REMEDIATOR_PLAYBOOKS__SCALE_ON_LAG__...`
addresses the playbook `scale-on-lag` (an environment variable's name cannot carry a `-`, and
its keys arrive lower-cased); a name two loaded playbooks share that way is refused at start.
Tested by starting the real daemon with that environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remediator.config import env_key, load_settings, playbook_entry
from remediator_testing.servers import free_port

ADMIN = "adm1n-t0ken"
TWINS = '''
from remediator.playbook import playbook, targets

@playbook(match='alertname="A"', target=targets.deployment(), name="cache-warm")
async def one(**_):
    """One."""

@playbook(match='alertname="B"', target=targets.deployment(), name="cache_warm")
async def two(**_):
    """Two."""
'''


def environment(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """Everything from the environment: no config file at all."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")},
        "REMEDIATOR_SERVER__PORT": str(port),
        "REMEDIATOR_STATE__PATH": str(tmp_path / "state.db"),
        "REMEDIATOR_WEBHOOK__AUTH__BEARER_TOKEN": "t0ken",
        "REMEDIATOR_ADMIN__TOKENS": json.dumps([{"name": "test", "token": ADMIN}]),
        **extra,
    }


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every daemon a test starts, stopped by its PID afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve(
    daemons: list[subprocess.Popen[bytes]], tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "serve.log", "ab")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        [sys.executable, "-m", "remediator", "serve", *args],
        cwd=tmp_path,
        stdout=log,
        stderr=log,
        env=env,
    )
    log.close()
    daemons.append(proc)
    return proc


def get(port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(log.read_text())


def test_the_environment_configures_a_hyphenated_playbook(
    tmp_path: Path, daemons: list[subprocess.Popen[bytes]]
) -> None:
    """Issue 14, item 12: this environment made the daemon refuse to start
    ("playbooks.scale_on_lag: no such playbook is loaded")."""
    port = free_port()
    config = tmp_path / "config.yml"
    # The file names the playbook exactly; the environment adds to it and wins key by key.
    config.write_text(json.dumps({"playbooks": {"scale-on-lag": {"params": {"step": 3}}}}))
    env = environment(
        tmp_path,
        port,
        REMEDIATOR_PLAYBOOKS__SCALE_ON_LAG__PARAMS__PARTITIONS="12",
        REMEDIATOR_PLAYBOOKS__SCALE_ON_LAG__MODE="auto",
        REMEDIATOR_PLAYBOOKS__PG_IDLE_IN_TRANSACTION__ENABLED="false",
        REMEDIATOR_GUARDS__RATE_LIMITS__PLAYBOOKS__SCALE_ON_LAG__MAX_ACTIONS="2",
    )
    proc = serve(daemons, tmp_path, env, "--config", str(config))
    wait_ready(proc, port, tmp_path / "serve.log")

    playbooks = {p["name"]: p for p in get(port, "/admin/playbooks")["playbooks"]}

    lag = playbooks["scale-on-lag"]
    assert lag["params"]["partitions"] == 12 and lag["params"]["step"] == 3
    assert lag["mode"] == "auto" and lag["enabled"] is True
    assert playbooks["pg-idle-in-transaction"]["enabled"] is False
    # Only the playbook the environment named: the others keep the defaults.
    assert playbooks["scale-on-latency"]["mode"] == "shadow"
    assert playbooks["scale-on-latency"]["params"]["step"] == 2


def test_a_name_two_playbooks_share_in_the_environment_is_refused_at_start(
    tmp_path: Path, daemons: list[subprocess.Popen[bytes]]
) -> None:
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "twins.py").write_text(TWINS)
    env = environment(
        tmp_path,
        free_port(),
        REMEDIATOR_PLAYBOOK_DIRS=json.dumps([str(tmp_path / "pb")]),
        REMEDIATOR_PLAYBOOKS__CACHE_WARM__MODE="auto",
    )
    proc = serve(daemons, tmp_path, env)

    assert proc.wait(timeout=30) == 2
    log = (tmp_path / "serve.log").read_text()
    assert "refusing to start" in log
    assert (
        "playbooks.cache_warm: ambiguous: the loaded playbooks cache-warm and cache_warm are "
        "both written CACHE_WARM in the environment; rename one of them"
    ) in log


def test_a_name_no_loaded_playbook_has_is_refused_at_start(
    tmp_path: Path, daemons: list[subprocess.Popen[bytes]]
) -> None:
    env = environment(
        tmp_path, free_port(), REMEDIATOR_PLAYBOOKS__SCALE_ON_LAGG__PARAMS__PARTITIONS="12"
    )
    proc = serve(daemons, tmp_path, env)

    assert proc.wait(timeout=30) == 2
    assert "playbooks.scale_on_lagg: no such playbook is loaded" in (
        (tmp_path / "serve.log").read_text()
    )


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("scale-on-lag", "scale_on_lag"),
        ("pg-idle-in-transaction", "pg_idle_in_transaction"),
        ("already_snake", "already_snake"),
        ("Team.Restart-API", "team_restart_api"),
    ],
)
def test_the_environment_form_of_a_name(name: str, form: str) -> None:
    assert env_key(name) == form


def test_each_map_keyed_by_playbook_finds_the_environment_form() -> None:
    settings = load_settings(
        None,
        {
            "REMEDIATOR_PLAYBOOKS__SCALE_ON_LAG__PARAMS__PARTITIONS": "12",
            "REMEDIATOR_GUARDS__RATE_LIMITS__PLAYBOOKS__SCALE_ON_LAG__MAX_ACTIONS": "2",
            "REMEDIATOR_APPROVAL__SLACK__PLAYBOOKS__SCALE_ON_LAG": '["U0ALICE"]',
        },
    )
    assert settings.playbook("scale-on-lag").params == {"partitions": "12"}
    window = playbook_entry(settings.guards.rate_limits.playbooks, "scale-on-lag")
    assert window is not None and window.max_actions == 2
    assert playbook_entry(settings.approval.slack.playbooks, "scale-on-lag") == ["U0ALICE"]
    assert settings.playbook("scale-on-latency").params == {}
