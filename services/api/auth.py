"""Access to the read API and the dashboard: a login token names a user and a role.

A request presents its token as ``Authorization: Bearer <token>`` or in the
``touchstream_session`` cookie that ``POST /v1/session`` sets. ``require(role)`` is the
dependency that guards a route: 401 (with ``WWW-Authenticate: Bearer``) without a valid token,
403 when the user's role is too low. Ingestion source keys are not login tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.access.tokens import Role, parse_static_tokens
from services.access.users import Principal, TokenResolver, Users
from services.api.ingest import Problem
from services.errors import ConfigurationError, StoreUnavailable
from services.ingest.keys import static_keys
from services.settings import Settings

__all__ = [
    "ACCESS_ERRORS",
    "SESSION_COOKIE",
    "Me",
    "Operator",
    "Viewer",
    "access_router",
    "end_session_cookie",
    "install_access",
    "require",
    "set_session_cookie",
]

SESSION_COOKIE = "touchstream_session"
CHALLENGE = 'Bearer realm="touchstream"'

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A login token: `touchstream users add NAME --role R` prints one.",
)
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The token in the session cookie that `POST /v1/session` sets.",
)

ACCESS_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown or removed one."},
    403: {"model": Problem, "description": "The user's role is too low for this."},
}


def _cookie(request: Request) -> dict[str, Any]:
    """The session cookie's attributes: the whole site, HttpOnly, SameSite=Strict, and
    Secure when served over HTTPS."""
    return {
        "path": "/",
        "secure": request.url.scheme == "https",
        "httponly": True,
        "samesite": "strict",
    }


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """Set the session cookie to ``token`` (checked by the caller)."""
    response.set_cookie(SESSION_COOKIE, token, **_cookie(request))


def end_session_cookie(request: Request, response: Response) -> None:
    """Clear the session cookie."""
    response.delete_cookie(SESSION_COOKIE, **_cookie(request))


class Me(BaseModel):
    """Who the token belongs to."""

    name: str
    role: Role


class SessionStart(BaseModel):
    token: str = Field(min_length=1, max_length=512, description="A login token.")


def install_access(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Let ``require`` check tokens against ``TOUCHSTREAM_API_TOKENS`` and the users in the
    store at ``engine``."""
    secret = settings.api_tokens
    static = parse_static_tokens(secret.get_secret_value()) if secret is not None else ()
    source_keys = set(static_keys(settings))
    shared = sorted({token.name for token in static if token.token_hash in source_keys})
    if shared:
        raise ConfigurationError(
            f"the API tokens of {', '.join(shared)} (TOUCHSTREAM_API_TOKENS) are also source "
            "keys (TOUCHSTREAM_INGEST_KEYS); an ingestion key must not read, so give them "
            "different values"
        )
    app.state.access = TokenResolver(static, Users(engine))


def _principal(request: Request, token: str) -> Principal | None:
    resolver = getattr(request.app.state, "access", None)
    if not isinstance(resolver, TokenResolver):
        raise RuntimeError("install_access(app, ...) was not called for this app")
    try:
        return resolver.principal_of(token)
    except StoreUnavailable as error:
        why = f"{error}; retry later"
    except SQLAlchemyError as error:  # e.g. a store not migrated yet
        why = f"{error.__class__.__name__}; is it at the latest `touchstream db upgrade`?"
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"cannot check the token: the user store cannot be read ({why})",
        headers={"Retry-After": "5"},
    )


def _unknown_token() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "unknown or removed token; `touchstream users list` shows the users, "
        "`touchstream users add NAME --role R` creates one",
        headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
    )


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that answers with the request's principal if its role includes ``role``."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        cookie: Annotated[str | None, Depends(session_cookie)],
    ) -> Principal:
        token = credentials.credentials if credentials is not None else cookie
        if not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "no token: send `Authorization: Bearer <token>` or sign in with "
                "POST /v1/session; `touchstream users add NAME --role R` creates a user",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        principal = _principal(request, token)
        if principal is None:
            raise _unknown_token()
        if not principal.role.includes(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{principal.name!r} has the {principal.role} role; this needs {role} or above",
            )
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]


def access_router() -> APIRouter:
    """Sign in and out with the session cookie (for the dashboard), and who am I."""
    router = APIRouter(prefix="/v1", tags=["access"])

    @router.post("/session", responses={401: ACCESS_ERRORS[401]})
    def start_session(body: SessionStart, request: Request, response: Response) -> Me:
        """Check a token and keep it in the `touchstream_session` cookie (HttpOnly,
        SameSite=Strict, Secure over HTTPS), which later requests may send instead of
        `Authorization: Bearer`."""
        principal = _principal(request, body.token)
        if principal is None:
            raise _unknown_token()
        set_session_cookie(request, response, body.token)
        return Me(name=principal.name, role=principal.role)

    @router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
    def end_session(request: Request, response: Response) -> None:
        """Clear the session cookie."""
        end_session_cookie(request, response)

    @router.get("/me", responses=ACCESS_ERRORS)
    def me(user: Viewer) -> Me:
        """The name and role the presented token belongs to."""
        return Me(name=user.name, role=user.role)

    return router
