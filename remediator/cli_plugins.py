"""Subcommands that other distributions add to `remediator` (entry points `remediator.commands`).

`remediator demo` and `remediator replay` run the daemon against the Kubernetes emulator, which
is the test kit's (`pip install remediator-testing`), not the daemon's: the daemon's wheel holds
no emulator and never imports the kit. The kit declares each command as an entry point whose
object, called with the subparsers, adds its parser and returns its handler. Without the kit
both commands stay listed and say how to get them; a plugin that fails to load is reported by
its own command and never stops `serve`, `check` or any other.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUP = "remediator.commands"
KIT = "remediator-testing"
# What the test kit adds, listed (with how to get it) when the kit is not installed.
KIT_COMMANDS = {
    "demo": "scripted incidents against an emulated shop, narrated",
    "replay": "deliver recorded payloads through the real pipeline to a Kubernetes emulator",
}

Handler = Callable[[argparse.Namespace], int]


def add_parsers(sub: Any, points: Iterable[EntryPoint] | None = None) -> dict[str, Handler]:
    """Adds every plugin's subcommand (and the kit's, missing or not); returns the handlers.

    `points`: the entry points to use instead of the installed ones (tests).
    """
    handlers: dict[str, Handler] = {}
    for point in entry_points(group=GROUP) if points is None else points:
        if point.name in handlers or point.name in sub.choices:
            continue  # a second registration of a name, or one of the daemon's own commands
        try:
            handlers[point.name] = point.load()(sub)
        except Exception as exc:  # a broken plugin is its own command's problem, no one else's
            handlers[point.name] = _unavailable(
                sub, point.name, f"{point.value} did not load: {type(exc).__name__}: {exc}"
            )
    for name, summary in KIT_COMMANDS.items():
        if name not in handlers:
            handlers[name] = _unavailable(
                sub,
                name,
                f"`remediator {name}` comes with the test kit: pip install {KIT} "
                "(from a checkout: pip install ./testing)",
                summary=f"{summary} (needs {KIT})",
            )
    return handlers


def _unavailable(sub: Any, name: str, problem: str, *, summary: str | None = None) -> Handler:
    """A stand-in command that takes any arguments and says why it cannot run (exit 2)."""
    if name not in sub.choices:
        # No option prefix: `--port 0`, even `--help`, are left to the message below.
        parser = sub.add_parser(name, help=summary or problem, add_help=False, prefix_chars="\0")
        parser.add_argument("arguments", nargs="*", help=argparse.SUPPRESS)

    def handler(_: argparse.Namespace) -> int:
        print(f"remediator: {problem}", file=sys.stderr)
        return 2

    return handler
