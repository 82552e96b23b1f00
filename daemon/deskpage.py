"""The exception desk as a web page for finance and delivery leads (admin listener, server-rendered, no
script): ``/desk`` lists exceptions with filters, paging and bulk actions; ``/desk/{id}`` shows one with its
payload and the trace of its business flow, and retries it (optionally with edited fields), resolves or
skips it. Every action goes through the same ``ExceptionDesk`` as the CLI and the JSON API, so it is
audited the same way (who: the name given at sign-in).

Sign-in: with ``http.admin_token`` set, ``/desk/login`` takes the token once and sets an HttpOnly,
SameSite=Strict cookie holding an HMAC of it (never the token); every form also carries a CSRF field
derived from the same HMAC. Without a token only the local host is served (as for the JSON API).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from accord.actors.desk import STATES, DeskError, Entry, ExceptionDesk
from accord.config.settings import Settings
from accord.deskhtml import detail_page, field_text, list_page, login_page
from accord.deskweb import ACTIONS, apply_action, filters_from, refused_admin
from accord.streams.audit import AuditTrail
from accord.streams.keys import Keys
from accord.streams.scope import Scope

COOKIE, USER_COOKIE = "accord_desk", "accord_desk_user"
PAGE_SIZE = 50
Endpoint = Callable[[Request], Awaitable[Response]]


def desk_page_routes(settings: Settings, redis: Redis) -> list[Route]:
    page = _DeskPage(settings, redis)
    return [Route("/desk/login", page.login, methods=["GET", "POST"]),
            Route("/desk", page.guard(page.listing)),
            Route("/desk/bulk", page.guard(page.bulk), methods=["POST"]),
            Route("/desk/{id}", page.guard(page.show)),
            Route("/desk/{id}/{action}", page.guard(page.act), methods=["POST"])]


def session_value(token: str) -> str:
    """What the sign-in cookie holds: an HMAC of the admin token (the token itself never leaves the config)."""
    return hmac.new(token.encode(), b"accord desk session", hashlib.sha256).hexdigest()


class _DeskPage:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.desk = ExceptionDesk(redis, Scope.of(settings))
        self.trail = AuditTrail(Keys(settings.namespace), settings.streams.audit_retention)
        token = settings.http.admin_token
        self.session = session_value(token) if token else ""
        secret = self.session.encode() if token else secrets.token_bytes(32)  # local-only desk: per process
        self.csrf = hmac.new(secret, b"csrf", hashlib.sha256).hexdigest()[:32]

    # -- access -------------------------------------------------------------------------------
    def guard(self, endpoint: Endpoint) -> Endpoint:
        """Signed in (cookie or bearer token), else to the sign-in page; POSTs also need the CSRF field."""
        async def guarded(request: Request) -> Response:
            if self.session and hmac.compare_digest(request.cookies.get(COOKIE, ""), self.session):
                return await endpoint(request)
            refused = refused_admin(self.settings, request)
            if refused is None:
                return await endpoint(request)
            if request.method == "GET" and self.session:
                return RedirectResponse("/desk/login?" + urlencode({"next": str(request.url.path)}), 303)
            return refused
        return guarded

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(login_page(request.query_params.get("next", "/desk"), "", bool(self.session)))
        form = await _form(request)
        target = form.get("next", "/desk") if form.get("next", "").startswith("/desk") else "/desk"
        if self.session and not hmac.compare_digest(session_value(form.get("token", "")), self.session):
            return HTMLResponse(login_page(target, "That token is not this desk's admin token.", True), 401)
        response = RedirectResponse(target, 303)
        if self.session:
            response.set_cookie(COOKIE, self.session, httponly=True, samesite="strict", path="/desk")
        response.set_cookie(USER_COOKIE, form.get("name", "").strip()[:60] or "web", httponly=True,
                            samesite="strict", path="/desk")
        return response

    def _csrf_ok(self, form: dict[str, str]) -> bool:
        return hmac.compare_digest(form.get("csrf", ""), self.csrf)

    # -- pages --------------------------------------------------------------------------------
    async def listing(self, request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items() if v}
        try:
            filters = filters_from(params)
            entries, after = await self.desk.page(filters, PAGE_SIZE, params.get("after", ""))
        except ValueError as exc:
            return HTMLResponse(list_page([], params, "", str(exc), self.csrf, STATES), 400)
        return HTMLResponse(list_page(entries, params, after, params.get("done", ""), self.csrf, STATES))

    async def show(self, request: Request) -> Response:
        try:
            entry = await self.desk.get(request.path_params["id"])
        except DeskError as exc:
            return HTMLResponse(list_page([], {}, "", str(exc), self.csrf, STATES), 404)
        events = await self.trail.read(self.redis, entry.record.correlation_id) if entry.record.correlation_id else []
        return HTMLResponse(detail_page(entry, events, request.query_params.get("done", ""), self.csrf))

    async def act(self, request: Request) -> Response:
        eid, action = request.path_params["id"], request.path_params["action"]
        form = await _form(request)
        if not self._csrf_ok(form):
            return HTMLResponse("the form is stale: reload the page and try again", 403)
        if action not in ACTIONS:
            return HTMLResponse(f"unknown action {action!r}", 404)
        body: dict[str, Any] = {"by": request.cookies.get(USER_COOKIE, "web"), "note": form.get("note", "")}
        if action == "retry" and form.get("edited") == "1":
            try:
                body["edit"] = await self._edits(eid, form)
            except (DeskError, ValueError) as exc:
                return RedirectResponse(f"/desk/{eid}?" + urlencode({"done": f"not retried: {exc}"}), 303)
        result = await apply_action(self.desk, action, eid, body)
        said = f"{action}: done" if result["ok"] else f"{action} refused: {result['error']}"
        return RedirectResponse(f"/desk/{eid}?" + urlencode({"done": said}), 303)

    async def bulk(self, request: Request) -> Response:
        form, raw = await _form(request), await request.body()
        if not self._csrf_ok(form):
            return HTMLResponse("the form is stale: reload the page and try again", 403)
        action, ids = form.get("action", ""), parse_qs(raw.decode()).get("id", [])
        if action not in ACTIONS or not ids:
            return RedirectResponse("/desk?" + urlencode({"done": "pick exceptions and an action"}), 303)
        body = {"by": request.cookies.get(USER_COOKIE, "web"), "note": form.get("note", "")}
        results = [await apply_action(self.desk, action, eid, body) for eid in ids]
        done = sum(r["ok"] for r in results)
        failed = [f"{r['id']}: {r['error']}" for r in results if not r["ok"]]
        said = f"{action}: {done} of {len(ids)} done" + (f"; {'; '.join(failed)}" if failed else "")
        return RedirectResponse("/desk?" + urlencode({"done": said}), 303)

    async def _edits(self, eid: str, form: dict[str, str]) -> dict[str, Any]:
        """The fields whose text was changed, parsed as the original value's type (JSON for non-text)."""
        fields = _fields(await self.desk.get(eid))
        edits: dict[str, Any] = {}
        for name, old in fields.items():
            new = form.get(f"f.{name}")
            if new is None or new == field_text(old):
                continue
            edits[name] = _parsed(name, old, new)
        if not edits:
            raise ValueError("no field was changed; use Retry to send it again as it was")
        return edits


def _parsed(name: str, old: Any, new: str) -> Any:
    """The edited text as the value it stands for: text stays text; a number, flag, list or object (or a
    field that was empty) is read as JSON, and an empty box clears the field."""
    if isinstance(old, str):
        return new
    if not new.strip():
        return None
    try:
        return json.loads(new)
    except json.JSONDecodeError as exc:
        if old is None:
            return new
        raise ValueError(f"field {name}: {new!r} is not a valid value ({exc.msg})") from None


def _fields(entry: Entry) -> dict[str, Any]:
    payload = entry.payload() or {}
    fields = payload.get("fields")
    return dict(fields) if isinstance(fields, dict) else {}


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form (last value of each name), without a multipart parser."""
    parsed = parse_qs((await request.body()).decode(errors="replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}
