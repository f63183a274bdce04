"""The `remediator` command as a user runs it, and SIGKILL between recording and acting."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from remediator_testing.alerts import alert, body, notification
from remediator_testing.servers import free_port
from tests.foundation.test_webhook import LAG

PLAYBOOK = '''
import asyncio, os
from pathlib import Path
from remediator.playbook import Action, playbook, targets

DIR = Path(os.environ["PB_DIR"])

@playbook(match='alertname="KafkaLagHigh"', target=targets.deployment())
async def slow_start(*, run, target, **_):
    """Hangs before acting until the test kills the daemon (unless told not to), then records
    one side effect."""
    (DIR / "started").touch()
    if not (DIR / "fast").exists():
        await asyncio.Event().wait()
    async def call():
        with open(DIR / "effects", "a") as f:
            f.write(target.key + "\\n")
    await run.act(Action("patch", "x", target, "effect", {}), call)

@playbook(match='alertname="HangInCall"', target=targets.deployment())
async def hang_in_call(*, run, target, **_):
    """Dies (in the test) between intent and outcome."""
    async def call():
        with open(DIR / "effects", "a") as f:
            f.write("hang " + target.key + "\\n")
        await asyncio.Event().wait()
    await run.act(Action("patch", "x", target, "hang", {}), call)
'''


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remediator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "test_playbooks.py").write_text(PLAYBOOK)
    return tmp_path


def write_config(workdir: Path, port: int, **extra: Any) -> Path:
    config = {
        "builtin_playbooks": False,
        "playbook_dirs": [str(workdir / "pb")],
        "mode": "auto",
        "server": {"port": port},
        "state": {"path": str(workdir / "state.db")},
        "webhook": {"auth": {"bearer_token": "t0ken"}},
        **extra,
    }
    path = workdir / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_check_reports_all_problems(workdir: Path) -> None:
    (workdir / "pb" / "broken.py").write_text("import nope_not_a_module\n")
    config = write_config(workdir, 1, playbooks={"slow-start": {"params": {"x": 1}}})
    result = run_cli("check", "--config", str(config), cwd=workdir, env={"PB_DIR": str(workdir)})
    assert result.returncode == 2
    assert "broken.py: ModuleNotFoundError" in result.stderr
    assert "playbooks.slow-start.params.x: unknown key" in result.stderr


def test_check_ok_lists_playbooks(workdir: Path) -> None:
    config = write_config(workdir, 1)
    result = run_cli("check", "--config", str(config), cwd=workdir, env={"PB_DIR": str(workdir)})
    assert result.returncode == 0, result.stderr
    assert "slow-start [auto]" in result.stdout and "hang-in-call [auto]" in result.stdout


def test_check_finds_the_built_in_playbooks_from_any_directory(tmp_path: Path) -> None:
    """Run outside the checkout (as after `pip install -e .`, where `playbooks` can import as
    a namespace package with no `__file__`), the built-in playbooks still load."""
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "scale-on-lag" in result.stdout and "restart-crashloop" in result.stdout


def test_serve_refuses_a_bad_config_naming_the_key(workdir: Path) -> None:
    config = workdir / "bad.yml"
    config.write_text("server:\n  port: eighty\n")
    result = run_cli("serve", "--config", str(config), cwd=workdir)
    assert result.returncode == 2 and "server.port" in result.stderr


def test_serve_refuses_a_broken_playbook_file(workdir: Path) -> None:
    (workdir / "pb" / "broken.py").write_text("raise SystemError('bad file')\n")
    config = write_config(workdir, free_port())
    result = run_cli("serve", "--config", str(config), cwd=workdir, env={"PB_DIR": str(workdir)})
    assert result.returncode == 2 and "broken.py: SystemError: bad file" in result.stderr


def test_explain(workdir: Path) -> None:
    config = write_config(workdir, 1)
    payload = workdir / "p.json"
    payload.write_bytes(
        body(
            notification(
                [
                    alert(LAG),
                    alert({**LAG, "deployment": "../x"}),
                    alert({"alertname": "Nope", "severity": "critical"}),
                    alert({**LAG, "deployment": "b"}, status="resolved"),
                    alert({**LAG, "namespace": "kube-system"}),
                ],
                truncated=2,
            )
        )
    )
    result = run_cli(
        "explain",
        str(payload),
        "--config",
        str(config),
        "--json",
        cwd=workdir,
        env={"PB_DIR": str(workdir)},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["truncated_alerts"] == 2
    first, hostile, nothing, resolved, denied = out["alerts"]
    assert first["playbook"] == "slow-start" and first["target"] == "Deployment/shop/orders"
    assert first["mode"] == "auto" and first["does"].startswith("Hangs before acting")
    assert hostile["decision"].startswith("refused: label 'deployment' is not a valid")
    assert nothing["decision"] == "no playbook; escalated (critical)"
    assert resolved["decision"].startswith("resolved")
    assert denied["refused"] == "out_of_scope"
    assert denied["decision"] == (
        "refused: out_of_scope: Deployment/kube-system/orders: namespace 'kube-system' is "
        "denied; escalated"
    )
    assert not (workdir / "state.db").exists(), "explain changes nothing"
    bad = workdir / "bad.json"
    bad.write_text('{"version": "4"}')
    result = run_cli(
        "explain", str(bad), "--config", str(config), cwd=workdir, env={"PB_DIR": str(workdir)}
    )
    assert (
        result.returncode == 2 and "invalid payload" in result.stderr and "alerts" in result.stderr
    )


class Serving:
    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = write_config(self.workdir, self.port)
        log = open(self.workdir / "serve.log", "ab")  # noqa: SIM115 - closed in kill()
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "remediator", "serve", "--config", str(config)],
            cwd=self.workdir,
            stdout=log,
            stderr=log,
            env={**os.environ, "PB_DIR": str(self.workdir)},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError((self.workdir / "serve.log").read_text())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.log.close()

    def post(self, payload: dict[str, Any]) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/webhook",
            data=body(payload),
            headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)


@pytest.fixture
def serving(workdir: Path) -> Iterator[Serving]:
    s = Serving(workdir, free_port())
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.kill()


def wait_until(check: Callable[[], object], what: str, timeout: float = 20) -> None:
    """Poll what the served daemon left on disk (its own process: no clock of ours reaches it)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def query(workdir: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(workdir / "state.db") as db:
        return db.execute(sql).fetchall()


def test_sigkill_before_acting_runs_exactly_once_after_restart(
    serving: Serving, workdir: Path
) -> None:
    serving.start()
    firing = notification([alert(LAG)])
    assert serving.post(firing) == 200  # durably recorded: 2xx
    wait_until((workdir / "started").exists, "the run to start")
    serving.kill()  # dies after recording, before acting
    assert not (workdir / "effects").exists()
    (workdir / "fast").touch()
    serving.start()
    assert serving.post(firing) == 200  # Alertmanager re-sends meanwhile
    wait_until(lambda: query(workdir, "SELECT 1 FROM runs WHERE state = 'acted'"), "the run")
    serving.kill(signal.SIGTERM)
    assert (workdir / "effects").read_text() == "Deployment/shop/orders\n"
    assert query(workdir, "SELECT count(*) FROM episodes") == [(1,)]


def test_sigkill_between_intent_and_outcome_is_escalated_not_rerun(
    serving: Serving, workdir: Path
) -> None:
    serving.start()
    firing = notification([alert({**LAG, "alertname": "HangInCall"})])
    assert serving.post(firing) == 200
    wait_until((workdir / "effects").exists, "the call to start")
    serving.kill()  # the intent is recorded, the outcome never will be
    serving.start()
    assert serving.post(firing) == 200
    # A wrong second run would come from the work the first life left unhandled (reloaded at
    # start) or from the re-send: wait until both were handled, then look.
    wait_until(
        lambda: (
            query(workdir, "SELECT firing_handled_at IS NOT NULL FROM episodes") == [(1,)]
            and query(workdir, "SELECT seq FROM digest_state WHERE name = 'journal'") == [(2,)]
        ),
        "the left-over work and the re-send to be handled",
    )
    serving.kill(signal.SIGTERM)
    assert (workdir / "effects").read_text() == "hang Deployment/shop/orders\n"
    assert query(workdir, "SELECT state FROM actions") == [("interrupted",)]
    assert query(workdir, "SELECT state FROM runs") == [("interrupted",)]
    reasons = query(workdir, "SELECT reason FROM escalations")
    assert len(reasons) == 1 and reasons[0][0].startswith("interrupted by a restart")
