"""Read API for Customer 360 and the friction workflow (acknowledge, resolve, reopen)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine

from services.access.tokens import Role
from services.access.users import Principal
from services.api.auth import ACCESS_ERRORS, Operator, require
from services.api.ingest import Problem
from services.crm.view import IDENTIFIER_KINDS, Customer360, customer_360, lookup
from services.crm.workflow import FrictionDetail, Status, change_status, friction
from services.errors import FrictionTransitionRefused, UnknownFriction

__all__ = ["StatusChange", "customers_router"]

Interactions = Annotated[
    int, Query(ge=1, le=200, description="How many of the latest interactions to include.")
]
Identifier = Annotated[str | None, Query(min_length=1, max_length=320)]


class StatusChange(BaseModel):
    """Why the status changes and who changes it; both are kept in the flag's history."""

    note: str = Field(min_length=1, max_length=4000)
    actor: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Who makes the change; default: the user the token belongs to.",
    )

    @field_validator("note", "actor")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains a NUL character (\\u0000), which the store cannot keep")
        return value


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, what)


def customers_router(engine: Engine) -> APIRouter:
    """Routes over the store at ``engine``; sync handlers, so FastAPI runs them in threads.
    Reading needs the viewer role, working a flag the operator role."""
    router = APIRouter(prefix="/v1", responses=ACCESS_ERRORS)
    reader = [Depends(require(Role.viewer))]
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}

    def view(customer_id: str, interactions: int) -> Customer360:
        found = customer_360(engine, customer_id, interactions=interactions)
        if found is None:
            raise _not_found(f"no customer {customer_id!r}")
        return found

    @router.get("/customers/lookup", tags=["customers"], responses=not_found, dependencies=reader)
    def lookup_customer(
        interactions: Interactions = 20,
        email: Identifier = None,
        phone: Identifier = None,
        loyalty_id: Identifier = None,
        account_id: Identifier = None,
        anonymous_id: Identifier = None,
        customer_id: Identifier = None,
    ) -> Customer360:
        """The 360 view of the customer one identifier resolves to (email case-insensitive;
        a merged-away customer_id finds the profile it was merged into)."""
        given = {
            kind: value
            for kind, value in zip(
                IDENTIFIER_KINDS,
                (customer_id, email, phone, loyalty_id, account_id, anonymous_id),
                strict=True,
            )
            if value is not None
        }
        if len(given) != 1:
            raise HTTPException(
                422,  # Unprocessable Content (the constant was renamed across versions)
                f"give exactly one of {', '.join(IDENTIFIER_KINDS)} "
                f"(got {', '.join(sorted(given)) or 'none'})",
            )
        ((kind, value),) = given.items()
        found = lookup(engine, kind, value)
        if found is None:
            raise _not_found(f"no customer with {kind} {value!r}")
        return view(found, interactions)

    @router.get(
        "/customers/{customer_id}", tags=["customers"], responses=not_found, dependencies=reader
    )
    def get_customer(customer_id: str, interactions: Interactions = 20) -> Customer360:
        """The 360 view: CRM profile, identifiers, metrics and health score, journey stages,
        open and recent friction, latest interactions (newest first). A merged-away id
        answers with the profile it was merged into."""
        return view(lookup(engine, "customer_id", customer_id) or customer_id, interactions)

    @router.get("/friction/{flag_id}", tags=["friction"], responses=not_found, dependencies=reader)
    def get_friction(flag_id: str) -> FrictionDetail:
        """A friction event with its status history."""
        try:
            return friction(engine, flag_id)
        except UnknownFriction as error:
            raise _not_found(str(error)) from None

    def change(flag_id: str, to: Status, body: StatusChange, user: Principal) -> FrictionDetail:
        try:
            return change_status(engine, flag_id, to, body.note, body.actor or user.name)
        except UnknownFriction as error:
            raise _not_found(str(error)) from None
        except FrictionTransitionRefused as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None

    workflow_errors: dict[int | str, dict[str, Any]] = {**not_found, 409: {"model": Problem}}

    @router.post("/friction/{flag_id}/acknowledge", tags=["friction"], responses=workflow_errors)
    def acknowledge(flag_id: str, body: StatusChange, user: Operator) -> FrictionDetail:
        """Acknowledge an open (or reopened) flag: someone is on it."""
        return change(flag_id, "acknowledged", body, user)

    @router.post("/friction/{flag_id}/resolve", tags=["friction"], responses=workflow_errors)
    def resolve(flag_id: str, body: StatusChange, user: Operator) -> FrictionDetail:
        """Resolve an open or acknowledged flag: the loop is closed."""
        return change(flag_id, "resolved", body, user)

    @router.post("/friction/{flag_id}/reopen", tags=["friction"], responses=workflow_errors)
    def reopen(flag_id: str, body: StatusChange, user: Operator) -> FrictionDetail:
        """Reopen an acknowledged or resolved flag."""
        return change(flag_id, "open", body, user)

    return router
