"""The identity graph: identifiers seen together belong to one profile (ADR 0001).

Pure and deterministic: the same linking events in the same order give the same
profiles, merges and refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.events import IDENTITY_KINDS


@dataclass(frozen=True, slots=True)
class GuardRails:
    """Most identifiers of a kind one profile may hold; more means a shared device or a
    data error, not a person."""

    max_emails: int = 5
    max_phones: int = 5
    max_anonymous_ids: int = 200
    max_accounts: int = 10
    max_loyalty_ids: int = 5

    def limit(self, kind: str) -> int:
        return {
            "customer_id": 1,  # two CRM customers are never merged by an event
            "email": self.max_emails,
            "phone": self.max_phones,
            "anonymous_id": self.max_anonymous_ids,
            "account_id": self.max_accounts,
            "loyalty_id": self.max_loyalty_ids,
        }[kind]


@dataclass(frozen=True, slots=True)
class Merge:
    winner: str
    loser: str
    event_id: str
    moved: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A link the guard rails refused; the event still resolved."""

    event_id: str
    customer_id: str
    refused: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Resolution:
    customer_id: str
    created: bool
    linked: tuple[str, ...] = ()
    merges: tuple[Merge, ...] = ()
    refusals: tuple[Refusal, ...] = ()


@dataclass(slots=True)
class Profile:
    customer_id: str
    order: int
    identifiers: dict[str, set[str]] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return len(self.identifiers.get(kind, ()))


def identifier_key(kind: str, value: str) -> str:
    return f"{kind}:{value.lower() if kind == 'email' else value}"


def _generated_id(key: str) -> str:
    return "ts_" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]


class IdentityGraph:
    """Identifier -> profile and profile -> identifiers, with merges and guard rails."""

    def __init__(self, rails: GuardRails | None = None) -> None:
        self.rails = rails or GuardRails()
        self.owner: dict[str, str] = {}
        self.profiles: dict[str, Profile] = {}
        self._created = 0  # creation order; profiles deleted by merges keep theirs unused

    def resolve(self, identity: Mapping[str, str | None], event_id: str) -> Resolution:
        """The customer of an event with these identifiers, linking and merging as needed."""
        given = [(k, identity[k]) for k in IDENTITY_KINDS if identity.get(k)]
        if not given:
            raise ValueError("an event needs at least one identifier")
        keys = [identifier_key(kind, str(value)) for kind, value in given]
        owners = sorted(
            {self.owner[k] for k in keys if k in self.owner}, key=lambda c: self.profiles[c].order
        )
        created = not owners
        profile = self._create(given, keys) if created else self.profiles[owners[0]]
        merges, refusals = [], []
        for loser_id in owners[1:]:
            merged = self._merge(profile, self.profiles[loser_id], event_id)
            if isinstance(merged, Merge):
                merges.append(merged)
            else:
                refusals.append(merged)
        linked, refused = self._attach(profile, keys)
        if refused:
            refusals.append(
                Refusal(event_id, profile.customer_id, tuple(refused), "identifier limit")
            )
        return Resolution(
            profile.customer_id, created, tuple(linked), tuple(merges), tuple(refusals)
        )

    def _create(self, given: list[tuple[str, str | None]], keys: list[str]) -> Profile:
        crm = dict(given).get("customer_id")
        customer_id = str(crm) if crm else _generated_id(keys[0])
        while customer_id in self.profiles:  # an id taken by another profile's CRM id
            customer_id = _generated_id(customer_id)
        profile = Profile(customer_id, self._created)
        self._created += 1
        self.profiles[customer_id] = profile
        return profile

    def _attach(self, profile: Profile, keys: list[str]) -> tuple[list[str], list[str]]:
        linked, refused = [], []
        for key in keys:
            if self.owner.get(key) == profile.customer_id:
                continue
            if key in self.owner:
                continue  # owned by a profile whose merge was refused; that refusal is recorded
            kind, _, value = key.partition(":")
            if profile.count(kind) >= self.rails.limit(kind):
                refused.append(key)
                continue
            profile.identifiers.setdefault(kind, set()).add(value)
            self.owner[key] = profile.customer_id
            linked.append(key)
        return linked, refused

    def _merge(self, winner: Profile, loser: Profile, event_id: str) -> Merge | Refusal:
        for kind in IDENTITY_KINDS:
            combined = winner.identifiers.get(kind, set()) | loser.identifiers.get(kind, set())
            if len(combined) > self.rails.limit(kind):
                return Refusal(
                    event_id,
                    winner.customer_id,
                    (loser.customer_id,),
                    f"merging {loser.customer_id} would give {len(combined)} {kind} "
                    f"identifiers (at most {self.rails.limit(kind)})",
                )
        moved = []
        for kind, values in loser.identifiers.items():
            for value in values:
                winner.identifiers.setdefault(kind, set()).add(value)
                self.owner[f"{kind}:{value}"] = winner.customer_id
                moved.append(f"{kind}:{value}")
        del self.profiles[loser.customer_id]
        return Merge(winner.customer_id, loser.customer_id, event_id, tuple(sorted(moved)))
