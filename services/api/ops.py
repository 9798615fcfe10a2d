"""Read API for operations: the stream-health report of the API's background sampler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from services.access.tokens import Role
from services.api.auth import ACCESS_ERRORS, require
from services.api.ingest import Problem
from services.ops.monitor import StreamMonitor
from services.ops.report import StreamsReport

__all__ = ["ops_router"]


def ops_router(monitor: StreamMonitor) -> APIRouter:
    """``GET /v1/ops/streams``: the latest report; requests never touch the broker. Like the
    rest of the read API it needs a viewer token (``/metrics``, ``/health`` and ``/ready``
    stay open for probes and scrapers)."""
    router = APIRouter(
        prefix="/v1/ops",
        tags=["ops"],
        responses=ACCESS_ERRORS,
        dependencies=[Depends(require(Role.viewer))],
    )

    @router.get(
        "/streams",
        responses={503: {"model": Problem, "description": "No sample has been taken yet."}},
    )
    async def streams() -> StreamsReport:
        """Stream health: consumer lag per group, topic and partition with each group's status
        (OK, WARN, STALLED, STOPPED from the lag's trend over the window), rates per stage,
        dead letters, event-time delay per channel, processing latency, members, sink backlog,
        broker and store reachability, and the overall status. See docs/operations.md."""
        report = monitor.latest
        if report is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "no stream-health sample yet: the first is taken when the API starts",
                headers={"Retry-After": str(max(1, round(monitor.interval)))},
            )
        return report

    return router
