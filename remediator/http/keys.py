"""Typed application keys shared by the handlers."""

from __future__ import annotations

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from remediator.config import Settings
from remediator.engine.engine import Engine
from remediator.http.auth import Credentials

ENGINE = web.AppKey("engine", Engine)
SETTINGS = web.AppKey("settings", Settings)
WEBHOOK_CREDENTIALS = web.AppKey("webhook_credentials", Credentials)
SLACK_VERIFIER = web.AppKey("slack_verifier", SignatureVerifier)
