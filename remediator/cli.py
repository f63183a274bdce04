"""The `remediator` command: serve, explain, check, admin, rbac (demo, replay: the test kit's)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from remediator import cli_admin, cli_plugins, cli_rbac
from remediator.alertmanager import PayloadError, parse_notification
from remediator.clients.kube import open_kube
from remediator.config import ConfigError, Settings, load_settings
from remediator.engine.assembly import load_registry, playbook_params
from remediator.engine.budgets import budget_warnings
from remediator.engine.engine import Engine
from remediator.engine.explain import add_gitops, explain, render
from remediator.engine.preflight import check_online
from remediator.engine.wiring import build_clients, gitops_rules
from remediator.http.admin.auth import AdminTokens
from remediator.http.app import Server, build_app
from remediator.http.auth import Credentials
from remediator.logs import configure, get_logger


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _fail(problems: list[str], what: str) -> int:
    print(f"remediator: {what}:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 2


def webhook_credentials(settings: Settings, log: Any) -> Credentials:
    """The configured credentials; with none configured, a generated token in a 0600 file.

    A fresh install must not accept unauthenticated webhooks, yet must start with one command:
    so it generates a token next to its state and says where to find it.
    """
    auth = settings.webhook.auth
    if auth.disabled:
        log.warning("webhook authentication is DISABLED: anyone who can reach the port can post")
        return Credentials(disabled=True)
    creds = Credentials(bearer=auth.bearer(), basic=auth.basic())
    if creds.configured:
        return creds
    token_file = settings.state.path.resolve().parent / "webhook-token"
    if not token_file.exists():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    log.warning(
        "no webhook credentials configured; using a generated bearer token",
        token_file=str(token_file),
    )
    return Credentials(bearer=token_file.read_text(encoding="utf-8").strip())


def cmd_check(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except ConfigError as exc:
        return _fail(exc.problems, "invalid configuration")
    registry, problems = load_registry(settings)
    params, param_problems = playbook_params(registry, settings)
    problems += param_problems
    try:
        # Reading the secrets proves their files exist and are readable.
        settings.webhook.auth.bearer()
        settings.webhook.auth.basic()
        settings.approval.slack.secret()
        if settings.state.backend == "postgres":
            settings.state.dsn_value()
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        return _fail(problems, f"{len(problems)} problem(s)")
    for warning in budget_warnings(registry, params, settings):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"configuration OK; {len(registry)} playbook(s) loaded:")
    for spec in registry:
        matchers = ", ".join(str(m) for m in spec.matchers)
        print(f"  {spec.name} [{settings.mode_of(spec.name).value}] {{{matchers}}}")
    if not args.online:
        return 0
    superuser = any(getattr(p, "allow_superuser", False) is True for p in params.values())
    findings = asyncio.run(check_online(settings, allow_superuser=superuser))
    print("online checks:")
    for finding in findings:
        print(f"  {finding}")
    failed = [f for f in findings if not f.ok]
    if failed:
        return _fail([str(f) for f in failed], f"{len(failed)} online check(s) failed")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except ConfigError as exc:
        return _fail(exc.problems, "invalid configuration")
    registry, problems = load_registry(settings)
    params, param_problems = playbook_params(registry, settings)
    if problems + param_problems:
        return _fail(problems + param_problems, "cannot load playbooks")
    try:
        body = Path(args.payload).read_bytes() if args.payload != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        return _fail([f"{args.payload}: {exc.strerror}"], "cannot read the payload")
    try:
        notification = parse_notification(body)
    except PayloadError as exc:
        details = [f"{e['loc']}: {e['msg']}" for e in exc.errors]
        return _fail([exc.message, *details], "invalid payload")
    clients = asyncio.run(build_clients(settings))
    entries = explain(notification, registry, settings, params, clients.scope)
    if args.online:
        if settings.kubernetes.mode == "none":
            return _fail(["kubernetes.mode is none: there is no cluster to read"], "--online")
        asyncio.run(_read_gitops(entries, settings))
    if args.json:
        print(json.dumps({"truncated_alerts": notification.truncatedAlerts, "alerts": entries}))
    else:
        print(render(entries, notification.truncatedAlerts))
    return 0


async def _read_gitops(entries: list[dict[str, Any]], settings: Settings) -> None:
    client = await open_kube(settings.kubernetes)
    try:
        await add_gitops(entries, client, gitops_rules(settings))
    finally:
        await client.close()


# `serve` exits with this when its replica was fenced (engine/runs/replicas.py).
FENCED_EXIT = 3


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except ConfigError as exc:
        return _fail(exc.problems, "invalid configuration")
    configure(settings.logging.format, settings.logging.level)
    log = get_logger(component="cli")
    registry, problems = load_registry(settings)
    params, param_problems = playbook_params(registry, settings)
    if problems + param_problems:
        return _fail(problems + param_problems, "refusing to start")
    for warning in budget_warnings(registry, params, settings):
        log.warning("above its ceiling", warning=warning)
    try:
        credentials = webhook_credentials(settings, log)
        AdminTokens.from_settings(settings.admin)  # an unreadable token file stops the start
        settings.approval.slack.secret()  # so does the Slack signing secret's
        if settings.state.backend == "postgres":
            settings.state.dsn_value()  # and the state database's URL file
    except (ConfigError, OSError) as exc:
        return _fail([str(exc)], "refusing to start")
    return asyncio.run(_serve(settings, registry, params, credentials, log))


async def _serve(
    settings: Settings, registry: Any, params: Any, credentials: Credentials, log: Any
) -> int:
    engine = Engine(settings, registry, params)
    app = build_app(settings, engine, credentials)
    server = Server(app, settings.server.host, settings.server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except Exception as exc:
        log.error("cannot start", error=str(exc))
        await server.stop()
        return 1
    log.info("listening", host=settings.server.host, port=server.port)
    # What start-up built (modules, schemas, the Kubernetes models) lives as long as the
    # process: keep it out of the collector's full passes, which otherwise stall the event
    # loop, and with it every webhook answer, for tens of milliseconds at a time.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)  # and run them a tenth as often (each ~1 MiB of garbage)
    stopping = asyncio.ensure_future(stop.wait())
    lost = asyncio.ensure_future(engine.lost.wait())
    await asyncio.wait([stopping, lost], return_when=asyncio.FIRST_COMPLETED)
    for waiter in (stopping, lost):
        waiter.cancel()
    if engine.fenced:
        # Another replica took over what this one held: restart as a new replica.
        log.critical("replica fenced: exiting", reason=engine.fenced_reason)
        await server.stop()
        return FENCED_EXIT
    log.info("stopping")
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="remediator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    check = sub.add_parser("check", help="validate the config and load every playbook")
    check.add_argument(
        "--online",
        action="store_true",
        help="also connect to each configured database and Kubernetes and check the grants "
        "and permissions the playbooks need",
    )
    expl = sub.add_parser("explain", help="show what the daemon would do with a payload")
    expl.add_argument("payload", help="Alertmanager webhook payload (JSON file, or - for stdin)")
    expl.add_argument("--json", action="store_true", help="machine-readable output")
    expl.add_argument(
        "--online",
        action="store_true",
        help="also read each Kubernetes target (GET only) to show the GitOps controller that "
        "manages it and the policy each kind of change would meet",
    )
    for p in (serve, check, expl):
        p.add_argument("--config", "-c", help="YAML config file (default: built-in defaults)")
    cli_admin.add_parser(sub)
    cli_rbac.add_parser(sub)
    plugins = cli_plugins.add_parsers(sub)
    args = parser.parse_args(argv)
    handler = {
        **plugins,
        "serve": cmd_serve,
        "check": cmd_check,
        "explain": cmd_explain,
        "admin": cli_admin.cmd_admin,
        "rbac": cli_rbac.cmd_rbac,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
