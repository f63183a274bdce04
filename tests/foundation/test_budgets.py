"""A playbook's budget beside the guards' ceilings: `check` warns when a parameter exceeds
its ceiling (the run will be capped, not refused), and `explain` and the admin API show what
each playbook may take."""

from __future__ import annotations

import json
from pathlib import Path

from remediator_testing.alerts import alert, body, notification
from tests.admin.helpers import READ, admin_config, call
from tests.conftest import MakeDaemon
from tests.foundation.test_cli_and_restart import run_cli
from tests.kubernetes.helpers import registry

PG = "pg-idle-in-transaction"


def config_file(tmp_path: Path, **config: object) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(json.dumps({"state": {"path": str(tmp_path / "state.db")}, **config}))
    return path


def test_check_warns_when_a_parameter_exceeds_its_guard(tmp_path: Path) -> None:
    """Issue 14, item 9: `max_sessions: 20` against the default ceiling of 10 was accepted
    silently, and every run with more than 10 stuck sessions was then refused."""
    config = config_file(tmp_path, playbooks={PG: {"params": {"max_sessions": 20}}})

    result = run_cli("check", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr  # a warning: the run is capped, not refused
    assert (
        f"warning: playbooks.{PG}.params.max_sessions = 20 exceeds "
        "guards.blast_radius.max_sessions_per_run = 10: at most 10 per run (the oldest first), "
        "the rest reported"
    ) in result.stderr


def test_check_says_nothing_when_every_parameter_is_under_its_guard(tmp_path: Path) -> None:
    config = config_file(
        tmp_path,
        playbooks={PG: {"params": {"max_sessions": 20}}},
        guards={"blast_radius": {"max_sessions_per_run": 20}},
    )

    result = run_cli("check", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_explain_shows_the_budget_and_its_ceiling(tmp_path: Path) -> None:
    config = config_file(tmp_path, guards={"blast_radius": {"max_pods_per_episode": 4}})
    payload = tmp_path / "p.json"
    labels = {"alertname": "RedisCacheDown", "namespace": "shop", "statefulset": "redis"}
    payload.write_bytes(body(notification([alert(labels)])))

    result = run_cli("explain", str(payload), "--config", str(config), "--json", cwd=tmp_path)
    text = run_cli("explain", str(payload), "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["alerts"]
    assert entry["budget"]["pods_per_episode"] == {
        "declared": "per_replica",
        "ceiling": 4,
        "setting": "guards.blast_radius.max_pods_per_episode",
        "says": "one per replica of the workload, at most 4 "
        "(guards.blast_radius.max_pods_per_episode = 4)",
    }
    assert (
        "  budget:   one per replica of the workload, at most 4 "
        "(guards.blast_radius.max_pods_per_episode = 4)"
    ) in text.stdout


async def test_the_admin_api_shows_each_playbooks_budget(make_daemon: MakeDaemon) -> None:
    both = registry("statefulset_rolling_restart")
    for spec in registry("restart_crashloop"):
        both.add(spec)
    daemon = await make_daemon(both, config=admin_config())

    status, answer = await call(daemon, "GET", "/admin/playbooks", token=READ)

    assert status == 200
    budgets = {p["name"]: p["budget"] for p in answer["playbooks"]}
    assert budgets["statefulset-rolling-restart"]["pods_per_episode"]["declared"] == "per_replica"
    crashloop = budgets["restart-crashloop"]["pods_per_episode"]
    assert (crashloop["declared"], crashloop["ceiling"]) == (1, 10)
    assert crashloop["says"] == (
        "1 per episode, at most 1 (guards.blast_radius.max_pods_per_episode = 10)"
    )
