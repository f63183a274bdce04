"""In-process fakes of the services remediator escalates to, speaking their real protocols.

Each is an aiohttp application on 127.0.0.1 (port 0) that validates what it receives the way
the real service does, records every request, and can be told to fail the next requests (500,
429 with Retry-After, ...). Use them to test your own configuration and playbooks:

    async with FakePagerDuty(routing_key="R" * 32) as pagerduty:
        settings = {"escalation": {"pagerduty": {"routing_key": "R" * 32,
                                                  "events_url": pagerduty.url}}}
        ...
        events = await pagerduty.wait_for(1)
        assert events[0]["event_action"] == "trigger"
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from remediator_testing.loopback import LoopbackApp
from remediator_testing.servers import LOOPBACK

__all__ = [
    "Failure",
    "FakePagerDuty",
    "FakeSlack",
    "FakeSlackInteractivity",
    "FakeSlackWebhook",
    "FakeWebhook",
    "Interaction",
    "Request",
]

PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass(frozen=True)
class Failure:
    """How to answer one request instead of accepting it."""

    status: int
    retry_after: float | None = None
    body: str = "injected failure"


@dataclass(frozen=True)
class Request:
    """One request as received: accepted ones are `valid`, others carry the `errors`."""

    path: str
    headers: Mapping[str, str]
    body: Any
    status: int
    errors: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)  # arrival, on the monotonic clock
    injected: bool = False  # answered with an injected failure (even a Slack HTTP 200)

    @property
    def valid(self) -> bool:
        return not self.errors and not self.injected and 200 <= self.status < 300


class _FakeService(LoopbackApp):
    """Failure injection and the log of requests, on a loopback port."""

    path = "/"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self._failures: list[Failure] = []
        self._refusals: list[tuple[Callable[[Any], bool], Failure]] = []
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    @property
    def accepted(self) -> list[Any]:
        """Bodies of the requests that were valid and accepted, in arrival order."""
        return [r.body for r in self.requests if r.valid]

    @property
    def invalid(self) -> list[Request]:
        """Requests refused because they broke the protocol (not injected failures)."""
        return [r for r in self.requests if r.errors]

    def fail_next(self, *failures: Failure) -> None:
        """Answer the next requests with these failures, in order, then accept again."""
        self._failures.extend(failures)

    def fail_when(self, matches: Callable[[Any], bool], failure: Failure) -> None:
        """Answer every request whose JSON body `matches` with `failure`, until `recover()`:
        one message the service refuses while it accepts the others."""
        self._refusals.append((matches, failure))

    def recover(self) -> None:
        """Accept again now: drop the failures not used yet and every `fail_when`."""
        self._failures.clear()
        self._refusals.clear()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def wait_for(self, count: int, within: float = 10.0) -> list[Any]:
        """Wait until `count` requests were accepted; returns their bodies."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.accepted) >= count)
        return self.accepted

    async def wait_for_requests(self, count: int, within: float = 10.0) -> list[Request]:
        """Wait until `count` requests arrived, accepted or not."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    def _failure_for(self, body: Any) -> Failure | None:
        if self._failures:
            return self._failures.pop(0)
        return next((f for matches, f in self._refusals if matches(body)), None)

    def failure_json(self, failure: Failure) -> dict[str, Any]:
        """The body of an injected failure's answer."""
        return {"error": failure.body}

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = dict(request.headers)
        injected = False
        if request.path != self.path or request.method != "POST":
            errors = [f"{request.method} {request.path}: expected POST {self.path}"]
            status, response = 404, web.json_response({"error": errors[0]}, status=404)
        elif (failure := self._failure_for(body)) is not None:
            extra = (
                {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
            )
            errors, status, injected = [], failure.status, True
            response = web.json_response(
                self.failure_json(failure), status=failure.status, headers=extra
            )
        else:
            errors = self.validate(headers, body)
            status, response = self.answer(body, errors)
        async with self._changed:
            self.requests.append(
                Request(request.path, headers, body, status, errors, injected=injected)
            )
            self._changed.notify_all()
        return response

    @abstractmethod
    def validate(self, headers: Mapping[str, str], body: Any) -> list[str]:
        """The protocol violations in one request (empty: valid)."""

    @abstractmethod
    def answer(self, body: Any, errors: list[str]) -> tuple[int, web.Response]:
        """The status and response the real service would give."""


def _string(errors: list[str], container: Mapping[str, Any], key: str, *, limit: int) -> None:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        errors.append(f"{key} must be a non-empty string")
    elif len(value) > limit:
        errors.append(f"{key} is longer than {limit} characters")


class FakePagerDuty(_FakeService):
    """The Events API v2 endpoint (`POST /v2/enqueue`): 202 for a valid event, 400 otherwise.

    Validates what PagerDuty does: `routing_key` (equal to the expected one if given),
    `event_action`, `dedup_key` (required to resolve or acknowledge), and for a trigger the
    `payload` with `summary` (<= 1024), `source`, `severity` and optional string fields.
    """

    path = "/v2/enqueue"

    def __init__(self, routing_key: str | None = None) -> None:
        super().__init__()
        self.routing_key = routing_key

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.accepted)

    def validate(self, headers: Mapping[str, str], body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["the body must be a JSON object"]
        errors: list[str] = []
        key = body.get("routing_key")
        if not isinstance(key, str) or not key:
            errors.append("routing_key must be a non-empty string")
        elif self.routing_key is not None and key != self.routing_key:
            errors.append("routing_key is not a known integration key")
        action = body.get("event_action")
        if action not in PAGERDUTY_ACTIONS:
            errors.append(f"event_action must be one of {PAGERDUTY_ACTIONS}")
        dedup = body.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("dedup_key must be a string of at most 255 characters")
        if action in ("resolve", "acknowledge") and not dedup:
            errors.append(f"dedup_key is required to {action}")
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                return [*errors, "payload must be an object"]
            _string(errors, payload, "summary", limit=1024)
            _string(errors, payload, "source", limit=1024)
            if payload.get("severity") not in PAGERDUTY_SEVERITIES:
                errors.append(f"payload.severity must be one of {PAGERDUTY_SEVERITIES}")
            for optional in ("component", "group", "class", "timestamp"):
                if optional in payload and not isinstance(payload[optional], str):
                    errors.append(f"payload.{optional} must be a string")
        return errors

    def answer(self, body: Any, errors: list[str]) -> tuple[int, web.Response]:
        if errors:
            return 400, web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        dedup = body.get("dedup_key") or f"fake-{len(self.requests)}"
        return 202, web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202
        )


class FakeWebhook(_FakeService):
    """A generic JSON receiver at `POST /hook`: 200 for a valid body, 400 otherwise.

    `headers` must be present with these values (e.g. an Authorization header); `validate`
    returns the problems of a body (default: it must be a JSON object).
    """

    path = "/hook"

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        validate: Callable[[Any], list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.expected_headers = dict(headers or {})
        self.validate_body = validate or (
            lambda body: [] if isinstance(body, dict) else ["the body must be a JSON object"]
        )

    def validate(self, headers: Mapping[str, str], body: Any) -> list[str]:
        errors = [
            f"header {name} is missing or wrong"
            for name, value in self.expected_headers.items()
            if headers.get(name) != value
        ]
        return errors + self.validate_body(body)

    def answer(self, body: Any, errors: list[str]) -> tuple[int, web.Response]:
        if errors:
            return 400, web.json_response({"errors": errors}, status=400)
        return 200, web.json_response({"ok": True})


SLACK_BLOCK_TYPES = ("section", "context", "divider", "header", "actions", "image", "rich_text")


def slack_blocks_errors(body: Mapping[str, Any]) -> list[str]:
    """What Slack would refuse in a message's `blocks` (and a missing `text` fallback)."""
    blocks = body.get("blocks")
    if blocks is None:
        return [] if body.get("text") else ["no_text"]
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return ["invalid_blocks: 1 to 50 blocks"]
    errors = [] if body.get("text") else ["missing text fallback for blocks"]
    for n, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in SLACK_BLOCK_TYPES:
            errors.append(f"invalid_blocks: block {n} has no known type")
            continue
        texts = [block.get("text")] if block["type"] == "section" else block.get("elements", [])
        for text in texts:
            if block["type"] in ("section", "context") and (
                not isinstance(text, dict)
                or text.get("type") not in ("mrkdwn", "plain_text")
                or not isinstance(text.get("text"), str)
                or not 0 < len(text["text"]) <= 3000
            ):
                errors.append(f"invalid_blocks: block {n} text must be 1-3000 characters")
    return errors


class FakeSlack(_FakeService):
    """Slack's Web API `chat.postMessage` (point `base_url` at `api_url`): checks the bot token,
    the channel (one of `channels`, if given), that a `thread_ts` names a top-level message it
    issued in that channel, and the Block Kit shape; answers like Slack (HTTP 200 with `ok`,
    or 429 with Retry-After, or the injected failure)."""

    path = "/api/chat.postMessage"

    def __init__(self, token: str, *, channels: Sequence[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.channels = set(channels) if channels is not None else None
        self._issued: dict[str, str] = {}  # ts of top-level messages -> channel
        self.interactive = FakeSlackInteractivity(self)

    def build_app(self) -> web.Application:
        app = web.Application()
        self.interactive.routes(app)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api/"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.accepted)

    @property
    def posted(self) -> list[tuple[str, dict[str, Any]]]:
        """Accepted messages with the `ts` answered for each, in arrival order."""
        return [
            (f"{1700000000 + n}.000100", r.body) for n, r in enumerate(self.requests) if r.valid
        ]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of the top-level message `ts`, in order."""
        return [body for _, body in self.posted if body.get("thread_ts") == ts]

    def failure_json(self, failure: Failure) -> dict[str, Any]:
        # With HTTP 200 this is Slack's `ok: false` answer, `body` its error code.
        return {"ok": False, "error": failure.body}

    def validate(self, headers: Mapping[str, str], body: Any) -> list[str]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return ["invalid_auth"]
        if not isinstance(body, dict) or not body.get("channel"):
            return ["channel_not_found"]
        if self.channels is not None and body["channel"] not in self.channels:
            return ["channel_not_found"]
        thread = body.get("thread_ts")
        if thread is not None and self._issued.get(str(thread)) != body["channel"]:
            return ["thread_not_found"]
        return slack_blocks_errors(body)

    def answer(self, body: Any, errors: list[str]) -> tuple[int, web.Response]:
        if errors:
            return 200, web.json_response({"ok": False, "error": errors[0]})
        ts = f"{1700000000 + len(self.requests)}.000100"
        if body.get("thread_ts") is None:
            self._issued[ts] = body["channel"]
        return 200, web.json_response({"ok": True, "channel": body["channel"], "ts": ts})


@dataclass(frozen=True)
class Interaction:
    """A signed interaction request as Slack sends it to an app's request URL."""

    body: bytes
    headers: dict[str, str]


class FakeSlackInteractivity:
    """What FakeSlack adds for interactive messages: `chat.update` (recorded in `updates`;
    `current(ts)` is a message as last updated), `usergroups.users.list` (members from
    `usergroups`), `response_url`s (answers recorded in `responses`), and signed
    `block_actions` payloads sent to an app (`click`)."""

    def __init__(self, fake: FakeSlack) -> None:
        self._fake = fake
        self.updates: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.usergroups: dict[str, list[str]] = {}
        self.invalid: list[tuple[str, list[str]]] = []  # (method, errors) refused
        self._changed = asyncio.Condition()
        self._response_urls = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat.update", self._update)
        app.router.add_get("/api/usergroups.users.list", self._usergroup)
        app.router.add_post("/api/usergroups.users.list", self._usergroup)
        app.router.add_post("/response/{n}", self._response)

    def current(self, ts: str) -> dict[str, Any]:
        """The message `ts` as the channel shows it now (after any chat.update)."""
        updated = [u for u in self.updates if u.get("ts") == ts]
        if updated:
            return updated[-1]
        return next(body for posted, body in self._fake.posted if posted == ts)

    async def wait_updates(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.updates) >= count)
        return self.updates

    async def wait_responses(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.responses) >= count)
        return self.responses

    async def _record(self, into: list[dict[str, Any]], body: dict[str, Any]) -> None:
        async with self._changed:
            into.append(body)
            self._changed.notify_all()

    async def _update(self, request: web.Request) -> web.Response:
        body = await request.json()
        errors = self._update_errors(request.headers, body)
        if errors:
            self.invalid.append(("chat.update", errors))
            return web.json_response({"ok": False, "error": errors[0]})
        await self._record(self.updates, body)
        return web.json_response({"ok": True, "channel": body["channel"], "ts": body["ts"]})

    def _update_errors(self, headers: Mapping[str, str], body: Any) -> list[str]:
        if headers.get("Authorization") != f"Bearer {self._fake.token}":
            return ["invalid_auth"]
        if not isinstance(body, dict):
            return ["invalid_arguments"]
        if body.get("ts") not in {ts for ts, _ in self._fake.posted}:
            return ["message_not_found"]
        if body.get("channel") != self.current(str(body["ts"])).get("channel"):
            return ["channel_not_found"]
        return slack_blocks_errors(body)

    async def _usergroup(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self._fake.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        group = request.query.get("usergroup") or (await request.post()).get("usergroup")
        if group not in self.usergroups:
            return web.json_response({"ok": False, "error": "no_such_subteam"})
        return web.json_response({"ok": True, "users": self.usergroups[str(group)]})

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not body.get("text"):
            self.invalid.append(("response_url", ["no_text"]))
            return web.Response(status=400, text="no_text")
        await self._record(self.responses, {**body, "url": str(request.url)})
        return web.Response(text="ok")

    def block_actions(
        self, message: Mapping[str, Any], action_id: str, user_id: str, *, user_name: str = ""
    ) -> dict[str, Any]:
        """The payload Slack sends when `user_id` clicks the button `action_id` of `message`
        (raises LookupError when the message has no such button)."""
        for block in message.get("blocks") or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    self._response_urls += 1
                    url = f"http://{LOOPBACK}:{self._fake.port}/response/{self._response_urls}"
                    return {
                        "type": "block_actions",
                        "user": {"id": user_id, "username": user_name or user_id.lower()},
                        "api_app_id": "A0FAKE",
                        "token": "deprecated-verification-token",
                        "container": {"type": "message", "channel_id": message.get("channel")},
                        "channel": {"id": message.get("channel")},
                        "message": dict(message),
                        "response_url": url,
                        "actions": [
                            {
                                "type": "button",
                                "action_id": action_id,
                                "block_id": block.get("block_id", ""),
                                "value": element.get("value"),
                                "action_ts": f"{time.time():.6f}",
                            }
                        ],
                    }
        raise LookupError(f"no button {action_id!r} in the message")

    @staticmethod
    def signed(
        payload: Mapping[str, Any] | list[Any],
        signing_secret: str,
        *,
        timestamp: int | None = None,
    ) -> Interaction:
        """Form-encode and sign a payload the way Slack does (`v0` HMAC-SHA256)."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return FakeSlackInteractivity.signed_body(body, signing_secret, timestamp=timestamp)

    @staticmethod
    def signed_body(
        body: bytes, signing_secret: str, *, timestamp: int | None = None
    ) -> Interaction:
        """Sign any body (e.g. a broken one) the way Slack signs a request."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(signature),
        }
        return Interaction(body, headers)

    @staticmethod
    async def send(url: str, interaction: Interaction) -> tuple[int, float]:
        """POST an interaction to the app; its status and how long it took to answer (s)."""
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=interaction.body, headers=interaction.headers) as response,
        ):
            await response.read()
            return response.status, time.monotonic() - started

    async def click(
        self,
        url: str,
        message: Mapping[str, Any],
        action_id: str,
        user_id: str,
        signing_secret: str,
    ) -> tuple[int, Interaction]:
        """`user_id` clicks a button of `message`: the signed request is sent to `url`."""
        interaction = self.signed(self.block_actions(message, action_id, user_id), signing_secret)
        status, _ = await self.send(url, interaction)
        return status, interaction


class FakeSlackWebhook(_FakeService):
    """A Slack incoming webhook: `POST /services/T000/B000/<secret>` with `text` and optional
    `blocks`; answers `ok` (text/plain) like Slack, or `invalid_payload` with 400."""

    path = "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"

    def validate(self, headers: Mapping[str, str], body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["invalid_payload"]
        return slack_blocks_errors(body)

    def answer(self, body: Any, errors: list[str]) -> tuple[int, web.Response]:
        if errors:
            return 400, web.Response(text="invalid_payload", status=400)
        return 200, web.Response(text="ok")
