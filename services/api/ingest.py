"""Ingestion endpoints: native ``/v1/events`` and the Segment-compatible tracking API."""

# No `from __future__ import annotations` here: FastAPI must see the `Source` dependency alias
# (a local of ingestion_router) as a real annotation, not as a string it cannot resolve.

import base64
import binascii
import gzip
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from schemas.errors import FieldError
from services.api.metrics import ApiMetrics
from services.errors import BrokerUnavailable
from services.ingest.gateway import Gateway, Prepared, Rejected, ingest_dead_letter, prepare
from services.ingest.keys import KeyResolver
from services.ingest.segment import Mapped, SegmentMapping, batch_messages, to_v1
from services.settings import Settings


class ItemError(BaseModel):
    field: str
    rule: str
    message: str


class ItemResult(BaseModel):
    index: int
    event_id: str | None
    status: Literal["accepted", "rejected", "dead_lettered", "unavailable"]
    reason: str | None = None
    errors: list[ItemError] = Field(default_factory=list)


class IngestResponse(BaseModel):
    """Per-event outcome. HTTP 200: all accepted; 207: some rejected; 422: none accepted."""

    accepted: int
    rejected: int
    results: list[ItemResult]


class SegmentResponse(BaseModel):
    """Segment clients only look for success; the counts tell the rest."""

    success: bool
    accepted: int
    dead_lettered: int
    results: list[ItemResult]


class Problem(BaseModel):
    detail: str


def _errors(errors: Sequence[FieldError]) -> list[ItemError]:
    return [ItemError(field=e.field, rule=e.rule, message=e.message) for e in errors]


class Ingestion:
    """State of the ingestion routes: settings, key resolver, gateway, mapping, metrics."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyResolver,
        gateway: Gateway,
        mapping: SegmentMapping,
        metrics: ApiMetrics,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.gateway = gateway
        self.mapping = mapping
        self.metrics = metrics

    def authenticate(self, request: Request) -> str:
        """The source name of the request's key: ``Authorization: Bearer KEY``, HTTP Basic with
        the key as user name (Segment's write key), or ``X-Touchstream-Key``."""
        key = _presented_key(request)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing source key: send `Authorization: Bearer <key>` (or HTTP Basic with the "
                "key as user name, as Segment clients do)",
                headers={
                    "WWW-Authenticate": 'Bearer realm="touchstream", Basic realm="touchstream"'
                },
            )
        try:
            source = self.keys.source_of(key)
        except SQLAlchemyError as error:
            detail = f"the source key store cannot be read ({error.__class__.__name__})"
            raise _unavailable(detail) from error
        if source is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked source key; create one with `touchstream sources add NAME`",
                headers={"WWW-Authenticate": 'Bearer realm="touchstream"'},
            )
        return source

    async def body(self, request: Request) -> Any:
        """The parsed JSON body; 413 when it is too large, 400 with the position when malformed."""
        limit = self.settings.ingest_max_bytes
        too_large = HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"request body over {limit} bytes (TOUCHSTREAM_INGEST_MAX_BYTES); send smaller batches",
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        raw = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            raw = _inflate(raw, limit, too_large)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"malformed JSON: {error}") from None

    async def produce(self, prepared: Sequence[Prepared], endpoint: str, source: str) -> None:
        """Produce to the raw topic; 503 (counted as unavailable) unless every record is acked."""
        try:
            acked = await self.gateway.produce(
                self.settings.topics.raw, [(p.key, p.value) for p in prepared]
            )
        except BrokerUnavailable as error:
            self.metrics.ingested.labels(endpoint, source, "unavailable").inc(len(prepared))
            raise _unavailable(str(error)) from error
        if not all(acked):
            self.metrics.ingested.labels(endpoint, source, "unavailable").inc(len(prepared))
            raise _unavailable("the broker did not acknowledge every event in time")


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme.lower() == "basic" and credentials.strip():
        try:
            user = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return request.headers.get("x-touchstream-key") or None


def _inflate(raw: bytes, limit: int, too_large: HTTPException) -> bytes:
    try:
        inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
        out = inflater.decompress(raw, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad compressed body: {error}") from None
    if len(out) > limit:
        raise too_large
    return out


def _too_deep() -> HTTPException:
    """JSON that orjson reads (1,024 levels) but that is too deep to copy or encode again."""
    return HTTPException(
        status.HTTP_400_BAD_REQUEST,
        "a message is nested too deeply to map or keep; events nest at most about 200 levels",
    )


def _unavailable(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"events not accepted: {detail}. Nothing of this request was acknowledged; retry later.",
        headers={"Retry-After": "5"},
    )


def ingestion_router(ingestion: Ingestion) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["ingestion"])
    Source = Annotated[str, Depends(ingestion.authenticate)]  # noqa: N806 - a type alias
    metrics = ingestion.metrics
    errors_doc: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem} for code in (400, 401, 413, 503)
    }

    @router.post(
        "/events",
        response_model=IngestResponse,
        responses={207: {"model": IngestResponse}, 422: {"model": IngestResponse}, **errors_doc},
    )
    async def ingest_events(request: Request, source: Source) -> ORJSONResponse:
        """Accept one event or a JSON array of events (contract v1). Each is validated; the valid
        ones are produced to touchpoints.raw, and the answer comes after the broker acknowledged
        them. 200: all accepted; 207: some rejected (see results); 422: none accepted."""
        started = time.perf_counter()
        body = await ingestion.body(request)
        items = body if isinstance(body, list) else [body]
        if len(items) > ingestion.settings.ingest_max_events:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"{len(items)} events in one request; at most "
                f"{ingestion.settings.ingest_max_events} (TOUCHSTREAM_INGEST_MAX_EVENTS)",
            )
        outcomes = [prepare(item, source) for item in items]
        valid = [o for o in outcomes if isinstance(o, Prepared)]
        await ingestion.produce(valid, "events", source)
        rejected = len(outcomes) - len(valid)
        code = 200 if not rejected else (207 if valid else 422)
        metrics.ingested.labels("events", source, "accepted").inc(len(valid))
        metrics.ingested.labels("events", source, "rejected").inc(rejected)
        metrics.latency.labels("events").observe(time.perf_counter() - started)
        # Plain rows shaped as IngestResponse: 1,000 pydantic models per request cost too much.
        rows = [_row(i, o) for i, o in enumerate(outcomes)]
        body = {"accepted": len(valid), "rejected": rejected, "results": rows}
        return ORJSONResponse(body, status_code=code)

    async def segment(request: Request, source: str, call: str) -> SegmentResponse:
        body = await ingestion.body(request)
        if not isinstance(body, dict):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "a Segment payload is a JSON object")
        if call == "batch":
            try:
                messages = batch_messages(body)
            except ValueError as error:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from None
            except RecursionError:
                raise _too_deep() from None
        else:  # the write key may also come in the body; it is a secret, never kept
            messages = [{"type": call, **{k: v for k, v in body.items() if k != "writeKey"}}]
        if len(messages) > ingestion.settings.ingest_max_events:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"{len(messages)} messages in one batch; at most "
                f"{ingestion.settings.ingest_max_events}",
            )
        try:
            return await _segment_messages(ingestion, messages, source, f"segment /v1/{call}")
        except (RecursionError, orjson.JSONEncodeError):  # mapping, before anything is produced
            raise _too_deep() from None

    def segment_endpoint(call: str) -> Callable[..., Awaitable[SegmentResponse]]:
        """The route of one Segment call; ``call`` is fixed here, not a parameter a client sets."""

        async def endpoint(request: Request, source: Source) -> SegmentResponse:
            return await segment(request, source, call)

        return endpoint

    for call in ("batch", "track", "identify", "page"):
        endpoint = segment_endpoint(call)
        endpoint.__doc__ = (
            f"Segment-compatible `{call}` (HTTP Tracking API; write key = source key as HTTP Basic "
            "user name). Mapped messages go to touchpoints.raw; unmapped or invalid ones are "
            "dead-lettered with their reason (see docs/segment.md)."
        )
        router.add_api_route(
            f"/{call}",
            endpoint,
            methods=["POST"],
            response_model=SegmentResponse,
            responses=errors_doc,
            name=f"segment_{call}",
        )
    return router


def _row(index: int, outcome: Prepared | Rejected) -> dict[str, Any]:
    """One ItemResult as a plain dict."""
    if isinstance(outcome, Prepared):
        return {
            "index": index,
            "event_id": outcome.event_id,
            "status": "accepted",
            "reason": None,
            "errors": [],
        }
    return {
        "index": index,
        "event_id": outcome.event_id,
        "status": "rejected",
        "reason": outcome.reason,
        "errors": [
            {"field": e.field, "rule": e.rule, "message": e.message} for e in outcome.errors
        ],
    }


async def _segment_messages(
    ingestion: Ingestion, messages: list[dict[str, Any]], source: str, ingress: str
) -> SegmentResponse:
    """Map each message; produce the valid ones and dead-letter the rest, with the reason."""
    now = datetime.now(UTC)
    prepared: list[tuple[int, Prepared]] = []
    letters = []
    results: dict[int, ItemResult] = {}
    for index, message in enumerate(messages):
        mapped = to_v1(message, source=source, mapping=ingestion.mapping, received_at=now)
        if isinstance(mapped, Mapped):
            outcome = prepare(mapped.event, source)
            if isinstance(outcome, Prepared):
                prepared.append((index, outcome))
                results[index] = ItemResult(
                    index=index, event_id=outcome.event_id, status="accepted"
                )
                continue
            reason, errors = outcome.reason, outcome.errors
        else:
            reason = mapped.reason
            errors = (
                FieldError(
                    "event" if reason == "unmapped_event" else "type", reason, mapped.detail
                ),
            )
        letter = ingest_dead_letter(
            orjson.dumps(message), reason=reason, errors=errors, ingress=ingress, source=source
        )
        letters.append(letter)
        results[index] = ItemResult(
            index=index,
            event_id=letter.event_id,
            status="dead_lettered",
            reason=reason,
            errors=_errors(errors),
        )
    await ingestion.produce([p for _, p in prepared], "segment", source)
    metrics = ingestion.metrics
    try:
        dead_acked = await ingestion.gateway.dead_letter(letters)
    except BrokerUnavailable as error:
        metrics.ingested.labels("segment", source, "unavailable").inc(len(letters))
        raise _unavailable(str(error)) from error
    if not all(dead_acked):
        metrics.ingested.labels("segment", source, "unavailable").inc(len(letters))
        raise _unavailable("the broker did not acknowledge every dead letter in time")
    metrics.ingested.labels("segment", source, "accepted").inc(len(prepared))
    metrics.ingested.labels("segment", source, "dead_lettered").inc(len(letters))
    return SegmentResponse(
        success=True,
        accepted=len(prepared),
        dead_lettered=len(letters),
        results=[results[i] for i in range(len(messages))],
    )
