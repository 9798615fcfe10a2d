"""Python SDK for touchpoint systems: validate events locally, send them to touchpoints.raw.

    from services.sdk import Emitter

    with Emitter.kafka("billing-core", "kafka-1:9092") as emitter:
        emitter.emit({"event_id": "inv-1187-failed", "type": "billing.payment_failed", ...})

or, through the ingest API, ``Emitter.http("billing-core", "https://ingest.example", key)``.

See docs/sdk.md.
"""

from services.sdk.emitter import Emitter
from services.sdk.http_transport import HttpTransport
from services.sdk.ingest_client import Unauthorized
from services.sdk.kafka_transport import KafkaTransport
from services.sdk.prepare import InvalidEvent, prepare
from services.sdk.transport import DeliveryReport, DeliveryTimeout, Record, Transport

__all__ = [
    "DeliveryReport",
    "DeliveryTimeout",
    "Emitter",
    "HttpTransport",
    "InvalidEvent",
    "KafkaTransport",
    "Record",
    "Transport",
    "Unauthorized",
    "prepare",
]
