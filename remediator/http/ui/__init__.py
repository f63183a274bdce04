"""The web page of episodes under /ui/: a timeline, one episode in full, governance.

Server-rendered HTML (no script), behind the admin tokens: a sign-in form that sets a session
cookie, or the token in an `Authorization: Bearer` header. Read tokens see everything; operator
tokens may also approve or deny pending runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from urllib.parse import quote, urlsplit

from aiohttp import web

from remediator.engine.views import StoreUnavailable
from remediator.http.admin.auth import AdminTokens
from remediator.http.ui import pages
from remediator.http.ui.render import page
from remediator.http.ui.sessions import COOKIE, Sessions
from remediator.logs import get_logger

log = get_logger(component="ui")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKENS = web.AppKey("ui_tokens", AdminTokens)
SESSIONS = web.AppKey("ui_sessions", Sessions)
PUBLIC = {"/ui/login", "/ui/static/style.css"}
STYLE = files("remediator.http.ui").joinpath("static/style.css").read_bytes()


def _local(target: str) -> str:
    """Where to go after signing in: only a path on this site (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/") or "\\" in target:
        return "/ui/"
    return target


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in PUBLIC:
        header = request.headers.get("Authorization")
        caller = request.config_dict[TOKENS].caller(header) if header else None
        if caller is None:
            session = request.config_dict[SESSIONS].get(request.cookies.get(COOKIE))
            if session is None:
                if request.method in ("GET", "HEAD"):
                    raise web.HTTPSeeOther(f"/ui/login?next={quote(request.path_qs)}")
                raise web.HTTPUnauthorized(text="sign in first")
            if request.method not in ("GET", "HEAD"):
                form = await request.post()
                if not session.csrf_ok(str(form.get("csrf", "")) or None):
                    raise web.HTTPForbidden(text="the form is stale or forged; reload the page")
            request[pages.SESSION] = session
            caller = session.caller
        request[pages.CALLER] = caller
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        return web.Response(status=503, text=f"the store is unavailable: {exc}")


async def _login_form(request: web.Request) -> web.Response:
    return page("login.html", next=_local(request.query.get("next", "/ui/")), problem="")


async def _login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = _local(str(form.get("next", "/ui/")))
    token = str(form.get("token", "")).strip()
    caller = request.config_dict[TOKENS].caller(f"Bearer {token}") if token else None
    if caller is None:
        log.warning("web sign-in refused", remote=request.remote)
        return page("login.html", status=401, next=target, problem="unknown token")
    session_id = request.config_dict[SESSIONS].open(caller)
    answer = web.HTTPSeeOther(target)
    answer.set_cookie(
        COOKIE,
        session_id,
        path="/ui/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    raise answer


async def _logout(request: web.Request) -> web.StreamResponse:
    request.config_dict[SESSIONS].close(request.cookies.get(COOKIE))
    answer = web.HTTPSeeOther("/ui/login")
    answer.del_cookie(COOKIE, path="/ui/")
    raise answer


async def _style(request: web.Request) -> web.Response:
    return web.Response(body=STYLE, content_type="text/css")


def ui_app(tokens: AdminTokens) -> web.Application:
    app = web.Application(middlewares=[_signed_in])
    app[TOKENS] = tokens
    app[SESSIONS] = Sessions()
    r = app.router
    r.add_get("/", pages.timeline)
    r.add_get("/login", _login_form)
    r.add_post("/login", _login)
    r.add_post("/logout", _logout)
    r.add_get("/static/style.css", _style)
    r.add_get("/episodes/{episode_id}", pages.episode)
    r.add_get("/governance", pages.governance)
    r.add_post("/approvals/{run_id}/{verdict:approve|deny}", pages.decide)
    return app
