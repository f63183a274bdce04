"""`remediator replay` and `remediator demo`: the daemon against the Kubernetes emulator.

The daemon does not import the test kit: it finds these two subcommands through the
`remediator.commands` entry points that this distribution declares (`replay_command`,
`demo_command`: each adds its parser and returns its handler). The emulator is imported only
when one of them runs, so `serve`, `check` and `explain` never load it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remediator.config import ConfigError, load_settings
from remediator.logs import configure

Handler = Callable[[argparse.Namespace], int]


def replay_command(sub: Any) -> Handler:
    """Adds `remediator replay` to the daemon's subparsers; returns its handler."""
    replay = sub.add_parser(
        "replay",
        help="deliver recorded payloads through the real pipeline to a Kubernetes emulator",
        description="Loads the configured playbooks, seeds the Kubernetes emulator from YAML "
        "objects, delivers the payloads in order through the real pipeline and guards in auto "
        "mode, and prints every call and the resulting change of each object. Nothing real is "
        "contacted. Exit 0: every run ended without failing or being refused; 1: one did; "
        "2: the input or the configuration is unusable.",
    )
    replay.add_argument("payloads", nargs="+", help="Alertmanager webhook payloads (JSON files)")
    replay.add_argument(
        "--cluster", help="YAML objects to seed the emulator (e.g. `kubectl get ... -o yaml`)"
    )
    replay.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    return cmd_replay


def demo_command(sub: Any) -> Handler:
    """Adds `remediator demo` to the daemon's subparsers; returns its handler."""
    demo = sub.add_parser(
        "demo",
        help="scripted incidents against an emulated shop, narrated (nothing to install)",
    )
    demo.add_argument("--port", type=int, default=9095, help="the daemon's port (0: any free)")
    demo.add_argument(
        "--exit-after-script",
        action="store_true",
        help="stop once the incidents are played (default: keep serving until Ctrl-C)",
    )
    return cmd_demo


def cmd_replay(args: argparse.Namespace) -> int:
    from remediator_testing.replay import ReplayError, replay

    try:
        settings = load_settings(Path(args.config) if args.config else None)
    except ConfigError as exc:
        print("remediator: invalid configuration:", *exc.problems, sep="\n  - ", file=sys.stderr)
        return 2
    # stdout is the replay's account; the daemon's own log goes to stderr, warnings only.
    configure(settings.logging.format, "warning")
    cluster = Path(args.cluster) if args.cluster else None
    try:
        return asyncio.run(
            replay(
                [Path(p) for p in args.payloads], settings=settings, cluster=cluster, out=sys.stdout
            )
        )
    except ReplayError as exc:
        print(f"remediator: cannot replay: {exc}", file=sys.stderr)
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from remediator_testing.demo import run_demo

    return run_demo(port=args.port, exit_after_script=args.exit_after_script, out=sys.stdout)
