"""Batches of events to the ingest API's ``/v1/events``: POST, split, retry, and what the
answer says per event. Standard library only (``urllib.request``): no HTTP client package.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.errors import TouchstreamError
from services.sdk.transport import Record, describe

USER_AGENT = "touchstream-sdk"
#: Statuses whose body carries a result per event: all, some or none accepted.
ANSWERED = frozenset({200, 207, 422})
#: Statuses worth retrying: the API or the broker behind it may take the batch later.
RETRIABLE = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 30.0

Settled = list[tuple[str, str | None]]  # (event_id, None when accepted, else why not)


class Unauthorized(TouchstreamError):
    """The ingest API refused the source key (HTTP 401/403); nothing more is sent with it."""


@dataclass(frozen=True)
class Answer:
    """What one POST got: an HTTP status and body, or status 0 and why there was no answer."""

    status: int
    body: bytes = b""
    retry_after: float | None = None
    error: str = ""

    def detail(self) -> str:
        """One line for a report: ``HTTP 503: <the server's detail>``, or the I/O error."""
        if not self.status:
            return self.error
        try:
            parsed: Any = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            parsed = None
        text = parsed.get("detail") if isinstance(parsed, dict) else None
        if not isinstance(text, str):
            text = self.body[:200].decode(errors="replace").strip()
        return f"HTTP {self.status}: {text}" if text else f"HTTP {self.status}"


class IngestClient:
    """Delivers one batch at a time and says, per event, whether the API accepted it.

    413 splits a batch in halves; 408/429/5xx and I/O errors are retried with backoff (the
    server's ``Retry-After`` honoured) up to ``max_retries`` times, then, like 400, fail every
    event of the batch with the reason. 401/403 set ``refused``; nothing is sent after that.
    ``stop`` cuts a backoff short (the batch then fails at once).
    """

    def __init__(
        self, url: str, key: str, *, timeout: float, max_retries: int, stop: threading.Event
    ) -> None:
        self.url = url
        self._key = key
        self._timeout = timeout
        self._max_retries = max_retries
        self._stop = stop
        self.refused: Unauthorized | None = None

    def deliver(self, batch: Sequence[Record]) -> Settled:
        """POST ``batch``: split it on 413, retry what may pass later, fail the rest."""
        attempt = 0
        while True:
            if self.refused is not None:
                return [(r.event_id, f"not sent: {self.refused}") for r in batch]
            answer = post_events(self.url, self._key, [r.value for r in batch], self._timeout)
            if answer.status in ANSWERED:
                return list(zip([r.event_id for r in batch], outcomes(answer, batch), strict=True))
            if answer.status == 413 and len(batch) > 1:
                half = len(batch) // 2
                return self.deliver(batch[:half]) + self.deliver(batch[half:])
            if answer.status in (401, 403):
                self.refused = Unauthorized(
                    f"the ingest API at {self.url} refused the source key ({answer.detail()}); "
                    "check the key: `touchstream sources add NAME` creates one"
                )
                return [(r.event_id, str(self.refused)) for r in batch]
            if answer.status and answer.status not in RETRIABLE:  # 400, one event over 413, ...
                return [(r.event_id, answer.detail()) for r in batch]
            if attempt >= self._max_retries or self._stop.wait(_backoff(attempt, answer)):
                tries = f"{attempt + 1} attempts" if attempt else "1 attempt"
                reason = f"{answer.detail()} (gave up after {tries})"
                return [(r.event_id, reason) for r in batch]
            attempt += 1


def _backoff(attempt: int, answer: Answer) -> float:
    """Seconds before the next attempt: the server's Retry-After, else jittered doubling."""
    if answer.retry_after is not None:
        return answer.retry_after
    return min(MAX_BACKOFF, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.0)  # noqa: S311


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would lose its body (urllib re-sends it as GET); fail instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post_events(url: str, key: str, values: Sequence[bytes], timeout: float) -> Answer:
    """POST ``values`` (validated event JSON) as one gzipped JSON array; never raises on I/O."""
    body = gzip.compress(b"[" + b",".join(values) + b"]", compresslevel=5)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by HttpTransport
        url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    try:
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return Answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.read(), retry_after(error.headers["Retry-After"]))
    except (TimeoutError, urllib.error.URLError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, TimeoutError):
            return Answer(0, error=f"no answer from {url} within {timeout}s; delivery unknown")
        return Answer(0, error=f"{url} unreachable: {describe(error)}")
    except (OSError, http.client.HTTPException) as error:
        return Answer(0, error=f"{url} broke off: {describe(error)}; delivery unknown")


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def outcomes(answer: Answer, records: Sequence[Record]) -> list[str | None]:
    """Per record, in order: ``None`` when the API accepted it, else why it did not.

    Only an explicit ``accepted`` for the record's own ``event_id`` counts as sent; an answer
    that cannot be read fails every record of the batch.
    """
    try:
        results = orjson.loads(answer.body)["results"]
        by_index = {result["index"]: result for result in results}
    except (orjson.JSONDecodeError, KeyError, TypeError) as error:
        unreadable = f"{answer.detail()[:300]} (no per-event results: {describe(error)})"
        return [unreadable] * len(records)
    found: list[str | None] = []
    for index, record in enumerate(records):
        result = by_index.get(index)
        if not isinstance(result, dict):
            found.append(f"HTTP {answer.status}: the answer has no result for this event")
        elif result.get("status") != "accepted":
            found.append(_rejection(result))
        elif result.get("event_id") == record.event_id:
            found.append(None)
        else:
            found.append(f"HTTP {answer.status}: the answer's result names another event")
    return found


def _rejection(result: dict[str, Any]) -> str:
    """``field: message; ...`` from a rejected result, else its reason or status."""
    errors = result.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(
            f"{e.get('field')}: {e.get('message')}" if isinstance(e, dict) else str(e)
            for e in errors
        )
    return str(result.get("reason") or result.get("status") or "rejected")
