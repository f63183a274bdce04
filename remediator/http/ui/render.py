"""HTML rendering: Jinja2 templates with autoescaping always on.

Alert labels and annotations come from whoever can write alert rules or post to the webhook, so
every value is escaped by the template engine, links are only made of http(s) URLs, and the
pages carry a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("remediator.http.ui", "templates"),
    autoescape=True,  # every template, whatever its name: nothing is rendered unescaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    if isinstance(value, str) and value:
        try:
            return _when(datetime.fromisoformat(value))
        except ValueError:
            return value
    return "" if value is None else str(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def safe_url(value: str | None) -> str | None:
    """The URL if it is plain http(s); anything else (javascript:, data:) is not a link."""
    if not value:
        return None
    try:
        scheme = urlsplit(value).scheme.lower()
    except ValueError:
        return None
    return value if scheme in ("http", "https") else None


_env.filters["when"] = _when
_env.filters["pretty"] = _pretty
_env.filters["safe_url"] = safe_url


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _env.get_template(template).render(**context)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
