"""The HTTP transport: batches of records POSTed to the ingest API by one sender thread."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from services.errors import ConfigurationError
from services.sdk.ingest_client import IngestClient, Unauthorized
from services.sdk.transport import DeliveryReport, DeliveryTimeout, Record, Tally, describe

log = logging.getLogger(__name__)

MAX_PENDING = 4  # full batches waiting for the sender before send() blocks (back-pressure)


class HttpTransport:
    """Sends records to ``{base_url}/v1/events`` without blocking per record.

    ``send`` buffers; every ``batch_size`` records (and, with ``flush_interval``, at least that
    often) the buffer becomes a batch that a daemon thread hands to :class:`IngestClient` (one
    gzipped JSON array per POST; splits, retries). An event counts as sent only when the API
    answered ``accepted`` for it. A refused key (401/403) makes ``flush`` and ``send`` raise
    :class:`Unauthorized`.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        batch_size: int = 500,
        timeout: float = 15.0,
        max_retries: int = 5,
        flush_interval: float | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"base_url {base_url!r} is not an http(s) URL, e.g. https://touchstream.example"
            )
        if not key.strip():
            raise ConfigurationError("the source key is empty; `touchstream sources add NAME`")
        if batch_size < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("need batch_size >= 1, max_retries >= 0 and timeout > 0")
        if flush_interval is not None and flush_interval <= 0:
            raise ValueError("flush_interval must be positive (or None: only full batches)")
        self.url = base_url.rstrip("/") + "/v1/events"
        self._stop = threading.Event()  # cuts backoff sleeps short at a close timeout
        self._client = IngestClient(
            self.url, key, timeout=timeout, max_retries=max_retries, stop=self._stop
        )
        self._batch_size = batch_size
        self._interval = flush_interval
        self._cond = threading.Condition()
        self._buffer: list[Record] = []
        self._buffered_at = 0.0
        self._batches: deque[list[Record]] = deque()
        self._inflight: list[Record] | None = None
        self._tally = Tally()
        self._closing = False  # the sender exits once nothing is left
        self._abandoned = False  # close() timed out: the sender's late results are dropped
        self._sender = threading.Thread(target=self._run, name="touchstream-sdk-http", daemon=True)
        self._sender.start()

    def send(self, record: Record, /) -> None:
        """Buffer one record; blocks only while MAX_PENDING full batches wait to be sent."""
        with self._cond:
            if self._client.refused is not None:
                raise Unauthorized(str(self._client.refused))
            if self._closing:
                raise RuntimeError("this HttpTransport is closed")
            self._buffer.append(record)
            if len(self._buffer) == 1 and self._interval is not None:
                self._buffered_at = time.monotonic()
                self._cond.notify_all()
            if len(self._buffer) >= self._batch_size:
                self._hand_off()
                self._cond.wait_for(lambda: len(self._batches) < MAX_PENDING)

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Send what is buffered, wait until every record is settled and report them.

        Raises :class:`DeliveryTimeout` if ``timeout`` seconds pass first (the records stay
        queued), and :class:`Unauthorized` once the API refused the key (the records that
        could not be sent are in the next report, as failed).
        """
        with self._cond:
            self._hand_off()
            if not self._cond.wait_for(self._idle, timeout):
                waiting = len(self._inflight or ()) + sum(len(b) for b in self._batches)
                raise DeliveryTimeout(
                    f"{waiting} events were not answered by the ingest API within {timeout}s; "
                    "they stay queued: flush() again to keep waiting, or close() to give up"
                )
            if self._client.refused is not None:
                raise Unauthorized(str(self._client.refused))
        return self._tally.report()

    def close(self, timeout: float | None = None) -> DeliveryReport:
        """Flush (up to ``timeout`` seconds), stop the sender and report what is left.

        Records not answered in time count as failed; a refused key is reported, not raised.
        """
        with self._cond:
            if self._closing:
                return self._tally.report()
            self._closing = True
            self._hand_off()
            self._cond.notify_all()
            done = self._cond.wait_for(self._idle, timeout)
            if not done:
                self._abandon(timeout)
        self._stop.set()
        if done:
            self._sender.join(5.0)
        return self._tally.report()

    def _idle(self) -> bool:
        return not self._buffer and not self._batches and self._inflight is None

    def _hand_off(self) -> None:
        """Turn the buffer into a batch for the sender (caller holds the lock)."""
        if self._buffer:
            self._batches.append(self._buffer)
            self._buffer = []
            self._cond.notify_all()

    def _abandon(self, timeout: float | None) -> None:
        """Fail everything unsettled at a close timeout (caller holds the lock)."""
        for record in self._inflight or ():
            self._tally.failed(
                record.event_id,
                f"no answer within the close timeout ({timeout}s); delivery unknown",
            )
        for record in (r for batch in self._batches for r in batch):
            self._tally.failed(record.event_id, f"not sent within the close timeout ({timeout}s)")
        self._batches.clear()
        self._inflight = None
        self._abandoned = True
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                if batch is None:
                    return
                self._inflight = batch
                self._cond.notify_all()  # wakes a send() waiting for room
            try:
                settled = self._client.deliver(batch)
            except Exception as error:  # a bug must not silently stop the sender
                log.exception("sending %d events to %s failed", len(batch), self.url)
                settled = [(r.event_id, describe(error)) for r in batch]
            with self._cond:
                if self._abandoned:
                    return  # close() already reported this batch
                for event_id, reason in settled:
                    if reason is None:
                        self._tally.delivered()
                    else:
                        self._tally.failed(event_id, reason)
                self._inflight = None
                self._cond.notify_all()

    def _next_batch(self) -> list[Record] | None:
        """Wait for a batch; with flush_interval, make one of an old enough buffer."""
        while not self._batches:
            if self._closing or self._abandoned:
                return None
            if self._interval is not None and self._buffer:
                left = self._buffered_at + self._interval - time.monotonic()
                if left <= 0:
                    self._hand_off()
                else:
                    self._cond.wait(left)
            else:
                self._cond.wait()
        return self._batches.popleft()
