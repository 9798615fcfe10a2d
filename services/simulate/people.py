"""The people of a scenario, and their events before delivery (drafts)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from typing import Any

from services.identity.graph import generated_id, identifier_key
from services.simulate.timeline import Timeline

KINDS = ("customer_id", "email", "phone", "loyalty_id", "account_id")
_FIRST = ("ana", "li", "omar", "sofia", "jan", "mia", "noah", "eva", "luca", "ines", "yuki", "tom")
_LAST = ("silva", "wei", "haddad", "rossi", "novak", "berg", "costa", "meyer", "sato", "dubois")


@dataclass(frozen=True, slots=True)
class Person:
    """Someone in the scenario: their identifiers and the id the platform should end up with."""

    final_id: str
    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    account_id: str | None = None
    anonymous_ids: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.customer_id is not None

    def identifiers(self) -> list[tuple[str, str]]:
        """``(kind, value)`` of every identifier the person has."""
        pairs = [(kind, getattr(self, kind)) for kind in KINDS if getattr(self, kind)]
        return pairs + [("anonymous_id", value) for value in self.anonymous_ids]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"final_id": self.final_id}
        data.update({kind: getattr(self, kind) for kind in KINDS if getattr(self, kind)})
        data["anonymous_ids"] = list(self.anonymous_ids)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Person:
        return cls(
            data["final_id"],
            data.get("customer_id"),
            data.get("email"),
            data.get("phone"),
            data.get("loyalty_id"),
            data.get("account_id"),
            tuple(data.get("anonymous_ids", ())),
        )


@dataclass(slots=True, eq=False)
class Draft:
    """An event before it has an id and a place in the stream."""

    type: str
    at: datetime
    attributes: dict[str, Any]
    identity: dict[str, str]
    source: str
    linkable: bool = True  # False: anonymous browsing that must not carry the customer id
    event_id: str = ""

    @property
    def channel(self) -> str:
        return self.type.partition(".")[0]


@dataclass(slots=True)
class Actor:
    """One person while their days are generated: identifiers, calendar, drafts, intent."""

    index: int
    rng: Random
    start: datetime
    timeline: Timeline
    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    loyalty_id: str | None = None
    account_id: str | None = None
    devices: list[str] = field(default_factory=list)
    since: dict[str, int] = field(default_factory=dict)  # device -> day it was first used
    drafts: list[Draft] = field(default_factory=list)
    intended: Counter[str] = field(default_factory=Counter)
    home_store: int = 1
    no_purchases: bool = False  # set when a return must stay the only one after its purchase
    _serial: int = 0

    @classmethod
    def create(cls, index: int, known: bool, rng: Random, start: datetime, days: int) -> Actor:
        actor = cls(index, rng, start, Timeline(days, rng), home_store=rng.randint(1, 40))
        if known:
            tag = f"{index:06d}"
            actor.customer_id = f"cus-{tag}"
            actor.email = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}.{index}@example.com"
            actor.phone = f"+4915{rng.randint(1, 9)}{index:08d}"
            actor.loyalty_id = f"LOY-{tag}"
            actor.account_id = f"ACC-{tag}"
        actor.new_device()
        return actor

    @property
    def known(self) -> bool:
        return self.customer_id is not None

    def serial(self, prefix: str) -> str:
        """A new id for an order, session, invoice or ticket of this person."""
        self._serial += 1
        return f"{prefix}-{self.index:06d}-{self._serial}"

    def new_device(self, since: int = -1) -> str:
        """A device (anonymous id) of this person's own, used from day ``since`` on."""
        device = f"anon-{self.index:06d}{len(self.devices)}-{self.rng.getrandbits(32):08x}"
        self.devices.append(device)
        self.since[device] = since
        return device

    def moment(self, day: int, earliest: float = 9, latest: float = 19) -> datetime:
        """A random whole second of ``day`` between the hours ``earliest`` and ``latest``."""
        second = self.rng.randint(int(earliest * 3600), int(latest * 3600) - 1)
        return self.start + timedelta(days=day, seconds=second)

    def day_at(self, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
        return self.start + timedelta(days=day, hours=hour, minutes=minute, seconds=second)

    def add(
        self,
        type_: str,
        at: datetime,
        attributes: dict[str, Any],
        identity: dict[str, str],
        source: str,
        *,
        linkable: bool = True,
    ) -> Draft:
        draft = Draft(type_, at, attributes, identity, source, linkable)
        self.drafts.append(draft)
        return draft

    def intend(self, rule_id: str, times: int = 1) -> None:
        """The episode being generated means to raise ``rule_id`` this many times."""
        self.intended[rule_id] += times

    def person(self) -> Person:
        if self.customer_id is None:
            key = identifier_key("anonymous_id", self.devices[0])
            return Person(generated_id(key), anonymous_ids=(self.devices[0],))
        used = {d.identity.get("anonymous_id") for d in self.drafts}
        return Person(
            self.customer_id,
            self.customer_id,
            self.email,
            self.phone,
            self.loyalty_id,
            self.account_id,
            tuple(device for device in self.devices if device in used),
        )

    def link(self) -> None:
        """Make each identifier's first use on each channel carry the customer id too, so the
        platform links every identifier to the CRM customer, whatever channel lags."""
        if self.customer_id is None:
            return
        linked: set[tuple[str, str, str]] = set()
        for draft in sorted(self.drafts, key=lambda d: d.at):
            if not draft.linkable:
                continue
            uses = {(draft.channel, k, v) for k, v in draft.identity.items() if k != "customer_id"}
            if "customer_id" not in draft.identity and not uses <= linked:
                draft.identity = {"customer_id": self.customer_id, **draft.identity}
            if "customer_id" in draft.identity:
                linked |= uses
