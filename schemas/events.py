"""Pydantic models of the v1 touchpoint event contract (DESIGN.md §2, fixed).

One model per event type, each with ``type: Literal[...]``, joined in a
discriminated union and decoded from bytes in one call by :func:`decode_event`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from schemas.errors import ContractViolation, FieldError
from schemas.fields import (
    Count,
    Csat,
    Currency,
    DueDate,
    EventId,
    EventTime,
    Identifier,
    IdentityEmail,
    IdentityValue,
    Money,
    Nps,
    Phone,
    Quantity,
    Seconds,
    Source,
    Text,
)

SCHEMA_ID = "https://touchstream.dev/schemas/touchpoint-v1.json"

#: Identifier kinds, strongest first: the order used to pick a partition key.
IDENTITY_KINDS: tuple[str, ...] = (
    "customer_id",
    "account_id",
    "loyalty_id",
    "email",
    "phone",
    "anonymous_id",
)


class Identity(BaseModel):
    """Who the event is about: at least one identifier."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"minProperties": 1})

    customer_id: IdentityValue | None = None
    email: IdentityEmail | None = None
    phone: Phone | None = None
    loyalty_id: IdentityValue | None = None
    account_id: IdentityValue | None = None
    anonymous_id: IdentityValue | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Identity:
        if not any(getattr(self, kind) for kind in IDENTITY_KINDS):
            raise PydanticCustomError(
                "identity_empty",
                "identity needs at least one of customer_id, email, phone, loyalty_id, "
                "account_id, anonymous_id",
            )
        return self

    def strongest(self) -> tuple[str, str]:
        """The strongest identifier present, as ``(kind, value)``."""
        for kind in IDENTITY_KINDS:
            value = getattr(self, kind)
            if value:
                return kind, value
        raise AssertionError("unreachable: validated identity is never empty")


class Attributes(BaseModel):
    """Per-type attributes: required ones are validated, extra ones are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _Session(Attributes):
    session_id: Identifier


class _Payment(Attributes):
    amount: Money
    currency: Currency


class _StoreOrder(_Payment):
    store_id: Identifier
    order_id: Identifier


class _Invoice(_Payment):
    invoice_id: Identifier


class _Ticket(Attributes):
    ticket_id: Identifier


class PageViewAttributes(_Session):
    url: Text


class ProductViewAttributes(_Session):
    sku: Identifier


class SearchAttributes(Attributes):
    query: Annotated[str, Field(max_length=1024)]
    results_count: Count


class AddToCartAttributes(Attributes):
    sku: Identifier
    quantity: Quantity
    unit_price: Money
    currency: Currency


class CheckoutStartedAttributes(_Session):
    cart_value: Money
    currency: Currency


class CheckoutCompletedAttributes(_Payment):
    order_id: Identifier


class FormErrorAttributes(_Session):
    form: Identifier
    error: Text


class StoreVisitAttributes(Attributes):
    store_id: Identifier


class ReturnAttributes(_StoreOrder):
    reason: Text


class QueueWaitAttributes(Attributes):
    store_id: Identifier
    wait_seconds: Seconds


class InvoiceIssuedAttributes(_Invoice):
    due_date: DueDate


class PaymentFailedAttributes(_Invoice):
    reason: Text


class SubscriptionCancelledAttributes(Attributes):
    plan: Identifier


class TicketOpenedAttributes(_Ticket):
    topic: Identifier
    via: Literal["phone", "email", "chat", "store"]


class CallAbandonedAttributes(Attributes):
    wait_seconds: Seconds


class CsatAttributes(Attributes):
    score: Csat


class NpsAttributes(Attributes):
    score: Nps


class EventBase(BaseModel):
    """The v1 envelope shared by every event type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId
    occurred_at: EventTime
    source: Source
    identity: Identity
    schema_version: Literal[1] = 1

    @property
    def channel(self) -> str:
        """``web``, ``store``, ``billing`` or ``support``: the part of ``type`` before the dot."""
        type_: str = getattr(self, "type")  # noqa: B009 - declared on every subclass
        return type_.partition(".")[0]


def _no_attributes() -> Attributes:
    return Attributes()


class WebPageView(EventBase):
    type: Literal["web.page_view"]
    attributes: PageViewAttributes


class WebProductView(EventBase):
    type: Literal["web.product_view"]
    attributes: ProductViewAttributes


class WebSearch(EventBase):
    type: Literal["web.search"]
    attributes: SearchAttributes


class WebAddToCart(EventBase):
    type: Literal["web.add_to_cart"]
    attributes: AddToCartAttributes


class WebCheckoutStarted(EventBase):
    type: Literal["web.checkout_started"]
    attributes: CheckoutStartedAttributes


class WebCheckoutCompleted(EventBase):
    type: Literal["web.checkout_completed"]
    attributes: CheckoutCompletedAttributes


class WebFormError(EventBase):
    type: Literal["web.form_error"]
    attributes: FormErrorAttributes


class WebLogin(EventBase):
    type: Literal["web.login"]
    attributes: Attributes = Field(default_factory=_no_attributes)


class WebSignup(EventBase):
    type: Literal["web.signup"]
    attributes: Attributes = Field(default_factory=_no_attributes)


class StoreVisit(EventBase):
    type: Literal["store.visit"]
    attributes: StoreVisitAttributes


class StorePosSale(EventBase):
    type: Literal["store.pos_sale"]
    attributes: _StoreOrder


class StoreReturn(EventBase):
    type: Literal["store.return"]
    attributes: ReturnAttributes


class StoreQueueWait(EventBase):
    type: Literal["store.queue_wait"]
    attributes: QueueWaitAttributes


class BillingInvoiceIssued(EventBase):
    type: Literal["billing.invoice_issued"]
    attributes: InvoiceIssuedAttributes


class BillingPaymentSucceeded(EventBase):
    type: Literal["billing.payment_succeeded"]
    attributes: _Invoice


class BillingPaymentFailed(EventBase):
    type: Literal["billing.payment_failed"]
    attributes: PaymentFailedAttributes


class BillingRefundIssued(EventBase):
    type: Literal["billing.refund_issued"]
    attributes: _Invoice


class BillingSubscriptionCancelled(EventBase):
    type: Literal["billing.subscription_cancelled"]
    attributes: SubscriptionCancelledAttributes


class SupportTicketOpened(EventBase):
    type: Literal["support.ticket_opened"]
    attributes: TicketOpenedAttributes


class SupportTicketResolved(EventBase):
    type: Literal["support.ticket_resolved"]
    attributes: _Ticket


class SupportTicketReopened(EventBase):
    type: Literal["support.ticket_reopened"]
    attributes: _Ticket


class SupportCallAbandoned(EventBase):
    type: Literal["support.call_abandoned"]
    attributes: CallAbandonedAttributes


class SupportCsatSubmitted(EventBase):
    type: Literal["support.csat_submitted"]
    attributes: CsatAttributes


class SupportNpsSubmitted(EventBase):
    type: Literal["support.nps_submitted"]
    attributes: NpsAttributes


TouchpointEvent = Annotated[
    WebPageView
    | WebProductView
    | WebSearch
    | WebAddToCart
    | WebCheckoutStarted
    | WebCheckoutCompleted
    | WebFormError
    | WebLogin
    | WebSignup
    | StoreVisit
    | StorePosSale
    | StoreReturn
    | StoreQueueWait
    | BillingInvoiceIssued
    | BillingPaymentSucceeded
    | BillingPaymentFailed
    | BillingRefundIssued
    | BillingSubscriptionCancelled
    | SupportTicketOpened
    | SupportTicketResolved
    | SupportTicketReopened
    | SupportCallAbandoned
    | SupportCsatSubmitted
    | SupportNpsSubmitted,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[TouchpointEvent] = TypeAdapter(TouchpointEvent)

#: Event type name -> model class, in catalogue order.
CATALOGUE: dict[str, type[EventBase]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in EventBase.__subclasses__()
}
EVENT_TYPES: tuple[str, ...] = tuple(CATALOGUE)


def required_attributes(event_type: str) -> tuple[str, ...]:
    """Names of the attributes an event of ``event_type`` must carry."""
    attributes = CATALOGUE[event_type].model_fields["attributes"].annotation
    if not (isinstance(attributes, type) and issubclass(attributes, Attributes)):
        raise TypeError(f"{event_type}: attributes must be an Attributes model")
    return tuple(name for name, field in attributes.model_fields.items() if field.is_required())


CHANNELS: tuple[str, ...] = ("web", "store", "billing", "support")


def unknown_type_message(given: str) -> str:
    """Why ``given`` is not a v1 type, listing the types of its channel when it has a known one."""
    channel = given.partition(".")[0]
    known = [t for t in EVENT_TYPES if t.startswith(f"{channel}.")]
    if known:
        return f"'{given}' is not a v1 event type; {channel} types are: {', '.join(known)}"
    return (
        f"'{given}' is not a v1 event type: a type is <channel>.<name> with channel one of "
        f"{', '.join(CHANNELS)} (e.g. web.page_view)"
    )


def _field_error(detail: ErrorDetails) -> FieldError:
    kind = detail["type"]
    if kind == "union_tag_invalid":
        given = detail["input"].get("type") if isinstance(detail["input"], dict) else None
        return FieldError("type", kind, unknown_type_message(str(given)))
    if kind == "union_tag_not_found":
        return FieldError("type", kind, "missing: every event needs a type such as web.page_view")
    loc = list(detail["loc"])
    if loc and loc[0] in CATALOGUE:
        loc = loc[1:]
    field = ".".join(str(part) for part in loc) or "(payload)"
    return FieldError(field, kind, detail["msg"])


def violation_from(error: ValidationError) -> ContractViolation:
    """Turn pydantic's error into a :class:`ContractViolation` naming every field."""
    details = error.errors(include_url=False)
    errors = tuple(_field_error(d) for d in details)
    reason = (
        "invalid_json"
        if any(d["type"] == "json_invalid" for d in details)
        else ("contract_violation")
    )
    return ContractViolation(reason, errors)


def decode_event(raw: bytes | str) -> TouchpointEvent:
    """Decode and validate one event from JSON; raise :class:`ContractViolation` if invalid."""
    try:
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError as error:
        raise violation_from(error) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a v1 touchpoint event, for other languages."""
    schema = EVENT_ADAPTER.json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Touchstream touchpoint event v1",
        "description": "One touchpoint event as emitted by a web, store, billing or support "
        "system. Generated from the pydantic models in schemas/events.py; see "
        "docs/event-contract.md.",
        **schema,
    }
