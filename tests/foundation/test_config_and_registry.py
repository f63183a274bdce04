"""Config validation, matcher syntax, targets, and loading playbook files."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.config import ConfigError, Mode, load_settings
from remediator.engine.assembly import playbook_params
from remediator.playbook import (
    MatcherError,
    PlaybookError,
    Registry,
    ResolveScope,
    TargetError,
    load_directories,
    parse_matchers,
    targets,
)


def test_defaults_are_the_embedded_shadow_setup() -> None:
    s = load_settings(None, {})
    assert s.mode is Mode.SHADOW
    assert (s.server.host, s.server.port) == ("127.0.0.1", 9095)
    assert s.state.backend == "sqlite" and s.server.max_body_bytes == 1024 * 1024


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("server:\n  port: 7000\nmode: approve\n")
    s = load_settings(path, {"REMEDIATOR_SERVER__PORT": "7001"})
    assert s.server.port == 7001 and s.mode is Mode.APPROVE


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("server:\n  prot: 1\nmode: fast\ndispatch:\n  workers: many\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    text = "\n".join(err.value.problems)
    assert "server.prot: unknown key" in text
    assert "mode:" in text and "dispatch.workers:" in text


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"REMEDIATOR_SERVER__PORT": "http"})
    assert err.value.problems[0].startswith("server.port:")


@pytest.mark.parametrize("text", ["[1, 2]", "server: [", "just a string"])
def test_malformed_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(path, {})


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    s = load_settings(
        None, {"REMEDIATOR_WEBHOOK__AUTH__BEARER_TOKEN_FILE": str(tmp_path / "token")}
    )
    assert s.webhook.auth.bearer() == "s3cret"
    assert "s3cret" not in repr(s)


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        ('alertname="A"', {"alertname": "A"}, True),
        ('alertname="A"', {"alertname": "AB"}, False),
        ('severity=~"critical|warning"', {"severity": "warning"}, True),
        ('severity=~"crit"', {"severity": "critical"}, False),  # anchored like Alertmanager
        ('namespace!="kube-system"', {"namespace": "kube-system"}, False),
        ('namespace!="kube-system"', {}, True),
        ('team!~"db.*"', {"team": "dba"}, False),
        ('{alertname="A", env=~"prod|stage"}', {"alertname": "A", "env": "prod"}, True),
        ('{alertname="A,B"}', {"alertname": "A,B"}, True),
        ('x=""', {}, True),  # a missing label matches the empty string
    ],
)
def test_matchers(spec: str, labels: dict[str, str], expected: bool) -> None:
    assert all(m.matches(labels) for m in parse_matchers(spec)) is expected


@pytest.mark.parametrize("spec", ['alertname=="A"', "=A", 'a=~"("', "", "{}"])
def test_bad_matchers(spec: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(spec)


@pytest.mark.parametrize(
    "labels",
    [
        {"namespace": "shop"},
        {"namespace": "shop", "deployment": ""},
        {"namespace": "shop", "deployment": "../etc"},
        {"namespace": "shop", "deployment": "a/b"},
        {"namespace": "shop", "deployment": "*"},
        {"namespace": "Shop", "deployment": "api"},
        {"namespace": "shop", "deployment": "x" * 300},
        {"namespace": "", "deployment": "api"},
    ],
)
def test_target_labels_cannot_widen_the_target(labels: dict[str, str]) -> None:
    with pytest.raises(TargetError):
        targets.deployment()(labels, ResolveScope())


def test_database_target_only_from_the_config() -> None:
    scope = ResolveScope(databases=frozenset({"orders"}))
    assert targets.database()({"datname": "orders"}, scope).key == "Database/orders"
    with pytest.raises(TargetError):
        targets.database()({"datname": "orders'; DROP TABLE x; --"}, scope)


def _write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)


GOOD = """
from pydantic import BaseModel
from remediator.playbook import playbook, targets

class P(BaseModel):
    model_config = {"extra": "forbid"}
    step: int = 1

@playbook(match='alertname="X"', target=targets.deployment(), params=P, priority=5)
async def good(**_):
    '''Does good things.'''
"""


def test_loading_reports_every_broken_file(tmp_path: Path) -> None:
    d = tmp_path / "pb"
    _write(d, "good.py", GOOD)
    _write(d, "syntax.py", "def broken(:\n")
    _write(d, "raises.py", "raise RuntimeError('boom')\n")
    _write(d, "sync.py", GOOD.replace("async def good", "def sync_one").replace("'''Does", "'''"))
    _write(d, "_private.py", "raise RuntimeError('never loaded')\n")
    registry = Registry()
    problems = load_directories([d, tmp_path / "missing"], registry, builtin=False)
    text = "\n".join(map(str, problems))
    assert "syntax.py: SyntaxError" in text
    assert "raises.py: RuntimeError: boom" in text
    assert "sync.py" in text and "async def" in text
    assert "missing: not a directory" in text
    assert "_private" not in text
    assert [s.name for s in registry] == ["good"]
    assert registry.get("good").description == "Does good things."  # type: ignore[union-attr]


def test_same_file_loads_into_separate_registries(tmp_path: Path) -> None:
    _write(tmp_path / "pb", "good.py", GOOD)
    first, second = Registry(), Registry()
    assert not load_directories([tmp_path / "pb"], first, builtin=False)
    assert not load_directories([tmp_path / "pb"], second, builtin=False)
    assert len(first) == len(second) == 1


def test_duplicate_names_and_missing_kwargs_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "a", "one.py", GOOD)
    _write(tmp_path / "b", "two.py", GOOD)
    registry = Registry()
    problems = load_directories([tmp_path / "a", tmp_path / "b"], registry, builtin=False)
    assert any("defined twice" in str(p) for p in problems)
    with pytest.raises(PlaybookError, match=r"\*\*_"):
        from remediator.playbook import playbook

        @playbook(match='a="b"', target=targets.deployment(), registry=Registry())
        async def strict(alert: object) -> None: ...


def test_params_are_validated_per_playbook(tmp_path: Path) -> None:
    _write(tmp_path / "pb", "good.py", GOOD)
    registry = Registry()
    load_directories([tmp_path / "pb"], registry, builtin=False)
    settings = load_settings(None, {"REMEDIATOR_PLAYBOOKS__GOOD__PARAMS__STEP": "3"})
    params, problems = playbook_params(registry, settings)
    assert not problems and params["good"].step == 3  # type: ignore[attr-defined]
    bad = load_settings(None, {"REMEDIATOR_PLAYBOOKS__GOOD__PARAMS__STEPS": "3"})
    _, problems = playbook_params(registry, bad)
    assert problems == ["playbooks.good.params.steps: unknown key"]
    unknown = load_settings(None, {"REMEDIATOR_PLAYBOOKS__NOPE__MODE": "auto"})
    _, problems = playbook_params(registry, unknown)
    assert problems == ["playbooks.nope: no such playbook is loaded"]
