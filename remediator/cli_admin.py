"""`remediator admin ...`: the admin API from a shell, so nobody writes curl at 3 a.m.

Token from `--token`, `--token-file` or `$REMEDIATOR_ADMIN_TOKEN`. Exit codes: 0 done, 1 the
API refused (the message says why), 2 cannot ask (usage, token, connection).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TOKEN_ENV = "REMEDIATOR_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a token)


class CannotAsk(Exception):
    pass


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CannotAsk(f"{args.token_file}: {exc.strerror}") from exc
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise CannotAsk(f"no token: give --token, --token-file or set {TOKEN_ENV}")
    return token


def call(
    args: argparse.Namespace,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    url = args.url.rstrip("/") + path
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CannotAsk(f"--url {args.url!r}: expected http:// or https://")
    params = {k: v for k, v in (query or {}).items() if v is not None}
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (checked)
    request.add_header("Authorization", f"Bearer {_token(args)}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": raw.decode("utf-8", "replace")[:500]}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CannotAsk(f"cannot reach {args.url}: {reason}") from exc


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CannotAsk(f"--label {pair!r}: expected name=value")
        labels[name] = value
    return labels


def _show_status(data: dict[str, Any]) -> str:
    breaker = data.get("breaker")
    lines = [
        f"mode: {data['mode']}   playbooks: {data['playbooks']}   "
        f"pending approvals: {data['pending_approvals']}",
        f"breaker: {'OPEN: ' + breaker['reason'] if breaker else 'closed'}",
        f"queue: dispatch {data['queue']['dispatch']}, outbox {data['queue']['outbox'] or 0}",
        f"store: {'ok' if data['store']['ok'] else 'UNAVAILABLE'} "
        f"({data['store'].get('episodes', '?')} episodes)",
    ]
    for pause in data.get("pauses", []):
        lines.append(f"paused #{pause['id']} {pause['scope']} {pause['key']}: {pause['reason']}")
    return "\n".join(lines)


def _show_episodes(data: dict[str, Any]) -> str:
    rows = [
        f"{e['id']}  {e['status']:<8}  {e['first_seen'][:19]}  {e['alertname']}  "
        f"{e['labels'].get('namespace', '-')}"
        for e in data["episodes"]
    ]
    return "\n".join(rows) or "no episodes"


def _show_dead_letters(data: dict[str, Any]) -> str:
    rows = [
        f"#{d['id']}  {d['channel']:<12}  {(d['dead_at'] or '')[:19]}  {d['kind']:<10}  "
        f"{d['episode_id'] or '-'}  {d['last_error']}"
        for d in data["dead_letters"]
    ]
    return "\n".join(rows) or "no dead letters"


def _show(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None, dict[str, Any]]:
    """The method, path, body and query of the command."""
    why = {"reason": args.reason} if getattr(args, "reason", None) is not None else None
    cmd = args.admin_command
    if cmd == "status":
        return "GET", "/admin/status", None, {}
    if cmd == "playbooks":
        return "GET", "/admin/playbooks", None, {}
    if cmd == "episodes":
        query = {
            "state": args.state,
            "playbook": args.playbook,
            "namespace": args.namespace,
            "since": args.since,
            "limit": args.limit,
        }
        return "GET", "/admin/episodes", None, query
    if cmd == "episode":
        return "GET", f"/admin/episodes/{urllib.parse.quote(args.episode, safe='')}", None, {}
    if cmd == "approvals":
        return "GET", "/admin/approvals", None, {}
    if cmd == "audit":
        return "GET", "/admin/audit", None, {"limit": args.limit}
    if cmd == "dead-letters":
        return "GET", "/admin/dead-letters", None, {"channel": args.channel, "limit": args.limit}
    if cmd == "resend-dead-letter":
        return "POST", f"/admin/dead-letters/{args.id}/resend", why, {}
    if cmd == "pause":
        body = {"scope": args.scope, "key": args.key or "", "reason": args.reason}
        if args.expires is not None:
            body["expires_in_seconds"] = args.expires
        return "POST", "/admin/pauses", body, {}
    if cmd == "resume":
        return "POST", f"/admin/pauses/{args.id}/resume", why, {}
    if cmd in ("approve", "deny"):
        return "POST", f"/admin/approvals/{args.run}/{cmd}", why, {}
    if cmd == "mode":
        mode = None if args.mode == "default" else args.mode
        return "POST", f"/admin/playbooks/{args.playbook}/mode", {**(why or {}), "mode": mode}, {}
    if cmd == "close-breaker":
        return "POST", "/admin/breaker/close", why, {}
    if cmd == "resend":
        episode = urllib.parse.quote(args.episode, safe="")
        return "POST", f"/admin/episodes/{episode}/resend-report", why, {}
    assert cmd == "run"
    body = {
        "playbook": args.playbook,
        "labels": _labels(args.label),
        "dry_run": not args.for_real,
        "reason": args.reason,
    }
    return "POST", "/admin/runs", body, {}


def cmd_admin(args: argparse.Namespace) -> int:
    try:
        method, path, body, query = _request(args)
        status, data = call(args, method, path, body, query)
    except CannotAsk as exc:
        print(f"remediator admin: {exc}", file=sys.stderr)
        return 2
    if status >= 400:
        message = data.get("error") if isinstance(data, dict) else data
        print(f"remediator admin: HTTP {status}: {message}", file=sys.stderr)
        for detail in data.get("details", []) if isinstance(data, dict) else []:
            print(f"  - {detail.get('field')}: {detail.get('problem')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data))
    elif args.admin_command == "status":
        print(_show_status(data))
    elif args.admin_command == "episodes":
        print(_show_episodes(data))
    elif args.admin_command == "dead-letters":
        print(_show_dead_letters(data))
    else:
        print(_show(data))
    return 0


def add_parser(sub: Any) -> None:
    admin = sub.add_parser("admin", help="call the admin API (status, pause, approve, run, ...)")
    admin.add_argument(
        "--url", default=os.environ.get("REMEDIATOR_ADMIN_URL", "http://127.0.0.1:9095")
    )
    admin.add_argument("--token", help=f"admin token (or --token-file, or ${TOKEN_ENV})")
    admin.add_argument("--token-file", help="file holding the admin token")
    admin.add_argument("--timeout", type=float, default=330.0, help="seconds to wait")
    admin.add_argument("--json", action="store_true", help="print the API's JSON answer")
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    cmds.add_parser("status", help="mode, breaker, pauses, queues, store")
    cmds.add_parser("playbooks", help="playbooks with their mode and parameters")
    cmds.add_parser("approvals", help="runs waiting for approval")
    audit = cmds.add_parser("audit", help="operator mutations, newest first")
    audit.add_argument("--limit", type=int)
    dead = cmds.add_parser("dead-letters", help="messages refused for good or unrenderable")
    dead.add_argument("--channel", help="slack_report, slack, pagerduty or webhook")
    dead.add_argument("--limit", type=int)
    episodes = cmds.add_parser("episodes", help="list episodes")
    episodes.add_argument("--state", choices=["firing", "resolved"])
    episodes.add_argument("--playbook")
    episodes.add_argument("--namespace")
    episodes.add_argument("--since", help="ISO 8601 time with a zone")
    episodes.add_argument("--limit", type=int)
    episode = cmds.add_parser("episode", help="one episode in full")
    episode.add_argument("episode")

    def mutation(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = cmds.add_parser(name, help=help_text)
        parser.add_argument("--reason", "-r", required=True, help="why (audit log)")
        return parser

    pause = mutation("pause", "pause remediation (global, a playbook, or a target)")
    pause.add_argument("scope", choices=["global", "playbook", "target"])
    pause.add_argument("key", nargs="?", help="playbook name or Kind/namespace/name")
    pause.add_argument("--expires", type=float, help="seconds until the pause lifts itself")
    mutation("resume", "lift a pause").add_argument("id", type=int)
    mutation("approve", "approve a pending run").add_argument("run", type=int)
    mutation("deny", "deny a pending run").add_argument("run", type=int)
    mode = mutation("mode", "change a playbook's mode")
    mode.add_argument("playbook")
    mode.add_argument("mode", choices=["shadow", "approve", "auto", "default"])
    mutation("close-breaker", "close the storm breaker")
    mutation("resend", "re-send an episode's reports").add_argument("episode")
    mutation("resend-dead-letter", "queue a dead letter again").add_argument("id", type=int)
    run = mutation("run", "run a playbook by hand (dry run unless --for-real)")
    run.add_argument("playbook")
    run.add_argument("--label", "-l", action="append", default=[], help="name=value")
    run.add_argument("--for-real", action="store_true", help="act, under every guard")
