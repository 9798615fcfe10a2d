"""The FastAPI application factory: ingestion, Customer 360, reports, health, readiness and
metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from services import __version__
from services.api.auth import access_router, install_access
from services.api.customers import customers_router
from services.api.dlq_watch import watch_dead_letters
from services.api.ingest import Ingestion, ingestion_router
from services.api.metrics import ApiMetrics
from services.api.ops import ops_router
from services.api.reports import reports_router
from services.dashboard import dashboard_router
from services.errors import BrokerUnavailable
from services.ingest.gateway import Gateway
from services.ingest.keys import KeyResolver, SourceKeys, static_keys
from services.ingest.segment import load_mapping
from services.kafka import admin_client
from services.ops.monitor import StreamMonitor, keep_sampling
from services.reports.outlines import journey_outlines
from services.settings import Settings, load_settings
from services.store.db import store_engine


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    broker: str
    missing_topics: list[str]
    store: str | None = None
    detail: str | None = None


def _check_broker(settings: Settings, broker_url: str) -> list[str]:
    admin = admin_client(broker_url, timeout=2.0)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [t for t in settings.topics.all() if t not in existing]


class RefuseNul:
    """Answer 400 to a path or query with a NUL (``%00``): no identifier or parameter holds
    one, and PostgreSQL refuses it in a query with an error, not with no rows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in query or b"\x00" in query
        ):
            detail = "the URL holds a NUL character (%00), which no path or parameter may contain"
            await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    broker_url: str | None = None,
    *,
    watch_dlq: bool = True,
) -> FastAPI:
    """Build the API for ``settings`` and the broker at ``broker_url`` (one composition root).
    ``watch_dlq``: follow the dead-letter topic and sample stream health in the background."""
    settings = settings or load_settings()
    broker = broker_url or settings.broker_url or ""
    metrics = ApiMetrics()
    gateway = Gateway(settings, broker)
    keys = KeyResolver(static_keys(settings), SourceKeys(store_engine(settings)))
    ingestion = Ingestion(
        settings, keys, gateway, load_mapping(settings.segment_mapping_file), metrics
    )
    monitor = StreamMonitor(settings, broker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher = (
            asyncio.create_task(watch_dead_letters(settings, broker, metrics))
            if watch_dlq
            else None
        )
        sampler = (
            asyncio.create_task(keep_sampling(monitor, metrics.streams.update))
            if watch_dlq
            else None
        )
        try:
            yield
        finally:
            for task in (watcher, sampler):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            monitor.close()
            await gateway.close()

    app = FastAPI(
        title="Touchstream",
        version=__version__,
        description="Omnichannel customer-experience platform: event ingestion (native and "
        "Segment-compatible), CX reports, Customer 360 and stream health.",
        lifespan=lifespan,
    )
    app.add_middleware(RefuseNul)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> Response:
        """FastAPI's 422 with non-ASCII escaped: the errors echo the input, and a lone surrogate
        (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8."""
        body = json.dumps({"detail": jsonable_encoder(error.errors())})
        return Response(body, status_code=422, media_type="application/json")

    app.include_router(ingestion_router(ingestion))
    store = store_engine(settings)
    install_access(app, settings, store)
    app.include_router(access_router())
    app.include_router(customers_router(store))
    app.include_router(reports_router(store, journey_outlines(settings)[0]))
    app.include_router(ops_router(monitor))
    app.include_router(
        dashboard_router(store, journey_outlines(settings)[0], lambda: monitor.latest)
    )
    started = time.monotonic()

    @app.get("/health", tags=["ops"])
    async def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", version=__version__)

    @app.get("/ready", tags=["ops"], responses={503: {"model": Readiness}})
    async def ready(response: Response) -> Readiness:
        """Readiness: the broker answers, the pipeline topics exist and the store answers."""
        try:
            missing = await asyncio.to_thread(_check_broker, settings, broker)
        except BrokerUnavailable as error:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            return Readiness(
                status="unavailable", broker=broker, missing_topics=[], detail=str(error)
            )
        if missing:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            return Readiness(
                status="unavailable",
                broker=broker,
                missing_topics=missing,
                detail="pipeline topics missing; `touchstream worker` creates them at start-up",
            )
        store_check = await asyncio.to_thread(monitor.store.check)
        if not store_check.reachable:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
            return Readiness(
                status="unavailable",
                broker=broker,
                missing_topics=[],
                store="unreachable",
                detail=f"the CRM store does not answer: {store_check.detail}",
            )
        return Readiness(
            status="ready",
            broker=broker,
            missing_topics=[],
            store="reachable",
            detail=f"up {time.monotonic() - started:.0f}s",
        )

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: ingestion counts and latency, dead letters by reason, stream
        health (consumer lag, stage rates, processing latency; docs/operations.md)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
