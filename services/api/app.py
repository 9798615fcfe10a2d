"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI, Response, status
from pydantic import BaseModel

from services import __version__
from services.errors import BrokerUnavailable
from services.kafka import admin_client
from services.settings import Settings, load_settings


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    broker: str
    missing_topics: list[str]
    detail: str | None = None


def _check_broker(settings: Settings, broker_url: str) -> list[str]:
    admin = admin_client(broker_url, timeout=2.0)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [t for t in settings.topics.all() if t not in existing]


def create_app(settings: Settings | None = None, broker_url: str | None = None) -> FastAPI:
    """Build the API for ``settings`` and the broker at ``broker_url``."""
    settings = settings or load_settings()
    broker = broker_url or settings.broker_url or ""
    app = FastAPI(
        title="Touchstream",
        version=__version__,
        description="Omnichannel customer-experience platform: ingestion, CX reports, "
        "Customer 360 and stream health.",
    )
    started = time.monotonic()

    @app.get("/health", tags=["ops"])
    async def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", version=__version__)

    @app.get("/ready", tags=["ops"], responses={503: {"model": Readiness}})
    async def ready(response: Response) -> Readiness:
        """Readiness: the broker answers and the pipeline topics exist."""
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
        return Readiness(
            status="ready",
            broker=broker,
            missing_topics=[],
            detail=f"up {time.monotonic() - started:.0f}s",
        )

    return app
