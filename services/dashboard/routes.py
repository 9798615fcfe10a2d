"""The dashboard's routes under ``/ui``: server-rendered pages over the CRM store, the friction
report and the stream-health monitor, behind the same login tokens as the read API.

A page without a valid session (the ``touchstream_session`` cookie, or a Bearer header)
answers 303 to ``/ui/login``. Pages carry a strict Content-Security-Policy: no inline script,
nothing from another origin."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from services.access.tokens import Role
from services.access.users import Principal
from services.api.auth import SESSION_COOKIE, end_session_cookie, require, set_session_cookie
from services.crm.view import customer_360
from services.dashboard.customer import customer_page, lookup_page
from services.dashboard.flags import (
    PAGE_SIZE,
    FlagsView,
    find_customer,
    flag_filter,
    flags_page,
    list_flags,
)
from services.dashboard.html import Frame, esc, link, page, path
from services.dashboard.journey import journey_page
from services.dashboard.ops import ops_page
from services.dashboard.overview import overview_page
from services.errors import ReportError
from services.ops.report import StreamsReport
from services.reports.friction import (
    FrictionReport,
    JourneyOutline,
    friction_report,
    known_journeys,
)
from services.reports.period import period_of

__all__ = ["dashboard_router"]

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
LOGIN = "/ui/login"
HOME = "/ui/"

Text = Annotated[str | None, Query(max_length=320)]


def _html(body: str, code: int = status.HTTP_200_OK) -> HTMLResponse:
    return HTMLResponse(body, status_code=code, headers=HEADERS)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard page of this site, else the overview."""
    if not target or not target.startswith("/ui/") or target.startswith(LOGIN):
        return HOME
    return target if "\\" not in target and "//" not in target else HOME


_viewer = require(Role.viewer)


def _check(request: Request, token: str | None) -> Principal:
    """The principal of the request's Bearer header, else of ``token``; raises as
    :func:`require` does (401 without a valid token)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())
        if scheme.lower() == "bearer" and value.strip()
        else None
    )
    return _viewer(request, credentials, token)


def signed_in(request: Request) -> Principal:
    """The signed-in user; without one, 303 to the login page (coming back here after)."""
    try:
        return _check(request, request.cookies.get(SESSION_COOKIE))
    except HTTPException as error:
        if error.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "sign in first",
            headers={"Location": link(LOGIN, {"next": here})},
        ) from None


User = Annotated[Principal, Depends(signed_in)]


def _login_form(target: str, problem: str | None = None) -> str:
    error = f'<p class="error" role="alert">{esc(problem)}</p>' if problem else ""
    return page(
        "Sign in",
        [
            '<div class="login"><h1>Touchstream</h1><p>Sign in with your login token '
            "(<code>touchstream users add NAME --role viewer</code> prints one).</p>",
            error,
            f'<form method="post" action="{LOGIN}">'
            f'<input type="hidden" name="next" value="{esc(target)}">'
            '<label>Login token <input type="password" name="token" required '
            'autocomplete="current-password" autofocus></label>'
            "<button>Sign in</button></form></div>",
        ],
    )


def dashboard_router(
    engine: Engine,
    outlines: Mapping[str, JourneyOutline],
    streams: Callable[[], StreamsReport | None],
) -> APIRouter:
    """The dashboard over the store at ``engine``; ``outlines`` (from the journey maps) order
    stages and name journeys; ``streams`` gives the latest stream-health report."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    assets = {
        name: (resources.files("services.dashboard") / "static" / name).read_bytes()
        for name in STATIC
    }
    journeys = tuple(outlines)
    rules = sorted({rule for o in outlines.values() for rule in o.severities})

    def frame(user: Principal, section: str, request: Request | None = None) -> Frame:
        carry = {}
        if request is not None:
            carry = {k: v for k in ("since", "until") if (v := request.query_params.get(k))}
        return Frame(user=user, journeys=journeys, section=section, carry=carry)

    def report(since: str | None, until: str | None, journey: str | None) -> FrictionReport:
        now = datetime.now(UTC)
        return friction_report(
            engine, period_of(since, until, now), journey=journey, outlines=outlines, now=now
        )

    def problem(title: str, message: str, f: Frame, code: int) -> HTMLResponse:
        body = [f"<h1>{esc(title)}</h1>", f'<p class="error" role="alert">{esc(message)}</p>']
        return _html(page(title, body, f), code)

    def shown(title: str, body: Iterable[str], f: Frame, script: bool = False) -> HTMLResponse:
        return _html(page(title, body, f, script=script))

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in assets:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {name!r}")
        return Response(
            assets[name],
            media_type=STATIC[name],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/login")
    def login_form(
        request: Request, next_: Annotated[str | None, Query(alias="next")] = None
    ) -> Response:
        target = _safe_next(next_)
        try:
            _check(request, request.cookies.get(SESSION_COOKIE))
        except HTTPException:
            return _html(_login_form(target))
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER)

    @router.post("/login")
    async def login(request: Request) -> Response:
        """Check the token of the form; keep it in the session cookie, as POST /v1/session."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = _safe_next((form.get("next") or [""])[0])
        if not token:
            return _html(_login_form(target, "Paste a login token."), 401)
        try:
            await run_in_threadpool(_check, request, token)
        except HTTPException as error:
            if error.status_code != status.HTTP_401_UNAUTHORIZED:
                raise
            return _html(_login_form(target, "Unknown or removed token."), 401)
        response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
        set_session_cookie(request, response, token)
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        response = RedirectResponse(LOGIN, status.HTTP_303_SEE_OTHER)
        end_session_cookie(request, response)
        return response

    @router.get("/")
    def overview(
        request: Request, user: User, since: Text = None, until: Text = None
    ) -> HTMLResponse:
        f = frame(user, "overview", request)
        try:
            found = report(since, until, None)
        except ReportError as error:
            return problem("Friction overview", str(error), f, 422)
        except OperationalError as error:
            return problem("Friction overview", f"cannot read the store: {error.orig}", f, 503)
        return shown("Friction overview", overview_page(found), f)

    @router.get("/journeys/{journey}")
    def journey(
        journey: str, request: Request, user: User, since: Text = None, until: Text = None
    ) -> HTMLResponse:
        f = frame(user, f"journey:{journey}", request)
        try:
            found = report(since, until, journey)
        except ReportError as error:
            code = 404 if str(error).startswith("no journey") else 422
            return problem(f"Journey {journey}", str(error), f, code)
        except OperationalError as error:
            return problem(f"Journey {journey}", f"cannot read the store: {error.orig}", f, 503)
        action = path("journeys", journey)
        return shown(f"Journey {journey}", journey_page(found, journey, action), f)

    @router.get("/friction")
    def friction(
        request: Request,
        user: User,
        journey: Text = None,
        stage: Text = None,
        rule: Text = None,
        status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
        customer: Text = None,
        since: Text = None,
        until: Text = None,
        page_: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
    ) -> HTMLResponse:
        f = frame(user, "friction", request)
        given = {
            "journey": journey,
            "stage": stage,
            "rule": rule,
            "status": status_,
            "customer": customer,
            "since": since,
            "until": until,
        }
        query = {k: v.strip() for k, v in given.items() if v and v.strip()}
        try:
            which, error = flag_filter(engine, query, datetime.now(UTC))
            total, items = (0, []) if error else list_flags(engine, which, page_, PAGE_SIZE)
            choices = tuple(dict.fromkeys([*journeys, *known_journeys(engine, outlines)]))
        except OperationalError as failure:
            return problem("Friction", f"cannot read the store: {failure.orig}", f, 503)
        view = FlagsView(total=total, items=items, page=page_, query=query, error=error)
        operator = user.role.includes(Role.operator)
        return shown("Friction", flags_page(view, operator, choices, rules), f, script=operator)

    @router.get("/customers")
    def customers(user: User, q: Text = None) -> Response:
        f = frame(user, "customers")
        if q and q.strip():
            found = find_customer(engine, q)
            if found is not None:
                return RedirectResponse(path("customers", found), status.HTTP_303_SEE_OTHER)
            return _html(page("Find a customer", lookup_page(q, True), f), 404)
        return shown("Find a customer", lookup_page("", False), f)

    @router.get("/customers/{customer_id:path}")
    def customer(
        customer_id: str,
        user: User,
        interactions: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> Response:
        f = frame(user, "customers")
        try:
            view = customer_360(engine, customer_id, interactions=interactions)
            found = find_customer(engine, customer_id) if view is None else None
        except OperationalError as failure:
            return problem("Customer", f"cannot read the store: {failure.orig}", f, 503)
        if view is None:  # an id merged into another finds the profile it went to
            if found is not None and found != customer_id:
                return RedirectResponse(path("customers", found), status.HTTP_303_SEE_OTHER)
            return _html(page("Find a customer", lookup_page(customer_id, True), f), 404)
        operator = user.role.includes(Role.operator)
        title = view.profile.name or view.customer_id
        return shown(title, customer_page(view, outlines, operator), f, script=operator)

    @router.get("/ops")
    def ops(user: User) -> HTMLResponse:
        return shown("Stream health", ops_page(streams()), frame(user, "ops"))

    return router
