"""POST /slack/interactions: Slack's interactivity request URL (the Approve/Deny buttons).

Only a request Slack signed is looked at: the signature (`X-Slack-Signature`, HMAC-SHA256 of
`v0:<timestamp>:<body>` with the app's signing secret) is checked by slack_sdk's verifier,
which also refuses a timestamp more than five minutes away; anything else gets 401 and
changes nothing. A click is recorded durably (with its signature, so the same request sent
again is refused as a replay) and answered at once; the decision happens after the answer
(engine/governance/slack_approvals.py), because Slack gives up on an answer after three seconds.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from remediator.engine.governance.slack_approvals import InteractionError, parse_click
from remediator.engine.views import StoreUnavailable
from remediator.http.keys import ENGINE, SLACK_VERIFIER
from remediator.logs import get_logger

log = get_logger(component="slack_interactions")


def _refused(message: str) -> web.Response:
    return web.json_response({"error": message}, status=401)


def _signed(verifier: SignatureVerifier, body: bytes, request: web.Request) -> bool:
    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    try:
        return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
    except (ValueError, UnicodeDecodeError):  # a timestamp that is not a number, a bad body
        return False


def _payload(body: bytes) -> object:
    form = parse_qs(body.decode("utf-8"), strict_parsing=False)
    values = form.get("payload")
    if not values:
        raise InteractionError("the form has no `payload` field")
    try:
        return json.loads(values[0])
    except ValueError as exc:
        raise InteractionError(f"`payload` is not JSON: {exc}") from None


async def interactions(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await request.read()
    if not _signed(request.app[SLACK_VERIFIER], body, request):
        log.warning("refused an unsigned, stale or wrongly signed request")
        return _refused("missing, stale or wrong Slack signature")
    try:
        click = parse_click(_payload(body))
    except InteractionError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if click is None:
        return web.Response(status=200)  # an interaction we do not handle
    approvals = engine.slack_approvals
    assert approvals is not None  # the route exists only when they are configured
    signature = request.headers["X-Slack-Signature"]
    try:
        recorded = await approvals.record(signature, click)
    except StoreUnavailable as exc:
        log.error("cannot record a click", error=str(exc))
        return web.json_response({"error": "cannot record the click now"}, status=503)
    if not recorded:
        log.warning("refused a replayed request", run=click.run_id, user=click.user_id)
        return _refused("this request was already received (replay)")
    engine.wake_timers()
    return web.Response(status=200)
