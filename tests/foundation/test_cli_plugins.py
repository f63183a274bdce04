"""`remediator demo` and `remediator replay` come from the test kit through entry points: found
when it is installed, explained when it is not, and a broken plugin breaks only its command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from remediator import cli_plugins


def parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    top = argparse.ArgumentParser(prog="remediator")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("serve")
    return top, sub


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=cli_plugins.GROUP)


def test_the_installed_kit_provides_demo_and_replay() -> None:
    installed = {p.name: p.value for p in cli_plugins.entry_points(group=cli_plugins.GROUP)}
    assert installed == {
        "demo": "remediator_testing.cli:demo_command",
        "replay": "remediator_testing.cli:replay_command",
    }
    top, sub = parser()
    handlers = cli_plugins.add_parsers(sub)
    args = top.parse_args(["demo", "--port", "0", "--exit-after-script"])
    assert (args.port, args.exit_after_script) == (0, True)
    assert handlers["demo"].__module__ == "remediator_testing.cli"


@pytest.mark.parametrize("argv", [["demo"], ["demo", "--port", "0"], ["replay", "--help"]])
def test_without_the_kit_the_commands_say_how_to_get_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    top, sub = parser()
    handlers = cli_plugins.add_parsers(sub, points=[])
    args = top.parse_args(argv)
    assert handlers[args.command](args) == 2
    err = capsys.readouterr().err
    assert f"`remediator {argv[0]}` comes with the test kit: pip install remediator-testing" in err
    assert "(needs remediator-testing)" in top.format_help()


def test_a_plugin_that_does_not_load_fails_only_its_own_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    top, sub = parser()
    handlers = cli_plugins.add_parsers(
        sub,
        points=[
            point("demo", "no_such_module_here:demo_command"),
            point("serve", "remediator_testing.cli:demo_command"),  # the daemon's own name
            point("replay", "remediator_testing.cli:replay_command"),
        ],
    )
    assert set(handlers) == {"demo", "replay"}  # `serve` stays the daemon's
    args = top.parse_args(["demo", "--anything"])
    assert handlers["demo"](args) == 2
    assert "no_such_module_here:demo_command did not load: ModuleNotFoundError" in (
        capsys.readouterr().err
    )
    assert top.parse_args(["replay", "p.json"]).payloads == ["p.json"]


def test_the_daemon_cli_lists_the_kits_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "remediator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "{serve,check,explain,admin,rbac,demo,replay}" in out
