"""Read API for CX reports: the friction report as JSON, CSV or one HTML page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from services.access.tokens import Role
from services.api.auth import ACCESS_ERRORS, require
from services.api.ingest import Problem
from services.errors import ReportError
from services.reports.friction import FrictionReport, JourneyOutline, friction_report
from services.reports.output import MEDIA_TYPES, ReportFormat, render
from services.reports.period import DEFAULT_DAYS, FORMS, period_of

__all__ = ["reports_router"]


class ApiFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


Moment = Annotated[str | None, Query(min_length=1, max_length=64)]


def reports_router(engine: Engine, outlines: Mapping[str, JourneyOutline]) -> APIRouter:
    """Report routes over the store at ``engine``; ``outlines`` (from the journey maps) order
    stages and name journeys without data yet. Sync handlers: FastAPI runs them in threads.
    Every report needs the viewer role."""
    router = APIRouter(
        prefix="/v1/reports",
        tags=["reports"],
        dependencies=[Depends(require(Role.viewer))],
        responses=ACCESS_ERRORS,
    )
    errors: dict[int | str, dict[str, Any]] = {
        200: {"content": {MEDIA_TYPES[ReportFormat.csv]: {}, MEDIA_TYPES[ReportFormat.html]: {}}},
        422: {"model": Problem, "description": "A bad date or period, or an unknown journey."},
        503: {"model": Problem, "description": "The store cannot be read."},
    }

    @router.get("/friction", response_model=FrictionReport, responses=errors)
    def friction(
        journey: Annotated[
            str | None, Query(min_length=1, max_length=64, description="Only this journey.")
        ] = None,
        since: Annotated[
            Moment,
            Query(
                description=f"First day, included: {FORMS}. "
                f"Default: {DEFAULT_DAYS} days before `until`."
            ),
        ] = None,
        until: Annotated[
            Moment,
            Query(description="Day after the last, excluded. Default: the end of today (UTC)."),
        ] = None,
        fmt: Annotated[ApiFormat, Query(alias="format", description="json, csv or html.")] = (
            ApiFormat.json
        ),
    ) -> Response:
        """Friction per journey, stage and rule for a period of whole UTC days: flags,
        customers affected, rate per 1,000 customers who reached the stage, severity, value
        at risk, change against the period before, top channels, example customers, totals,
        per-stage and per-day series. See docs/reports.md for each field's source."""
        now = datetime.now(UTC)
        try:
            period = period_of(since, until, now)
            report = friction_report(engine, period, journey=journey, outlines=outlines, now=now)
        except ReportError as error:
            raise HTTPException(422, str(error)) from None
        except OperationalError as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot read the store: {error.orig}"
            ) from None
        kind = ReportFormat(fmt.value)
        headers = {}
        if kind is not ReportFormat.json:
            name = f"friction-{period.since.isoformat()}-{period.until.isoformat()}.{kind.value}"
            headers["Content-Disposition"] = f'inline; filename="{name}"'
        return Response(render(report, kind), media_type=MEDIA_TYPES[kind], headers=headers)

    return router
