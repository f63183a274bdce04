"""`remediator rbac`: print the Role or ClusterRole the enabled playbooks need."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from remediator.config import ConfigError, load_settings
from remediator.engine import rbac
from remediator.engine.assembly import load_registry


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "rbac",
        help="print the Kubernetes RBAC the enabled playbooks need",
        description="Prints a Role and RoleBinding per allowed namespace "
        "(guards.blast_radius.allow_namespaces, minus the denied ones), or a ClusterRole and "
        "ClusterRoleBinding when no allow list is set, granting exactly the rules the enabled "
        "playbooks declare.",
    )
    parser.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    parser.add_argument(
        "--service-account", default=rbac.NAME, help="the daemon's service account's name"
    )
    parser.add_argument("--namespace", default=rbac.NAME, help="the namespace the daemon runs in")


def cmd_rbac(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(Path(args.config) if args.config else None)
    except ConfigError as exc:
        return _fail(exc.problems, "invalid configuration")
    registry, problems = load_registry(settings)
    found = rbac.plan(registry, settings)
    problems += found.problems
    if problems:
        return _fail(problems, f"{len(problems)} problem(s)")
    objects = rbac.manifests(
        found.rules,
        found.namespaces,
        service_account=args.service_account,
        namespace=args.namespace,
    )
    sys.stdout.write(rbac.render(objects))
    return 0


def _fail(problems: list[str], what: str) -> int:
    print(f"remediator: {what}:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2
