"""The identity graph: identifiers seen together belong to one profile (ADR 0001).

Pure and deterministic: the same linking events in the same order give the same
profiles, merges and refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, MutableMapping
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
    """Profile ``loser`` was folded into ``winner`` by event ``event_id``.

    ``reason`` is ``linked`` (an event linked two profiles) or ``identified`` (a profile
    known only by device or contact ids got its CRM ``customer_id`` and is renamed to it)."""

    winner: str
    loser: str
    event_id: str
    moved: tuple[str, ...]
    reason: str = "linked"


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

    @property
    def known(self) -> bool:
        """Named by a CRM ``customer_id`` (it holds one)."""
        return bool(self.identifiers.get("customer_id"))


def identifier_key(kind: str, value: str) -> str:
    return f"{kind}:{normalised(kind, value)}"


def normalised(kind: str, value: str) -> str:
    """An identifier's value as profiles are matched on it (emails regardless of case)."""
    return value.lower() if kind == "email" else value


def generated_id(key: str) -> str:
    """The id of a profile first seen without a CRM ``customer_id``, from its first identifier
    key (see :func:`identifier_key`)."""
    return "ts_" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]


class IdentityGraph:
    """Identifier -> profile and profile -> identifiers, with merges and guard rails.

    ``owner`` and ``profiles`` are plain dicts by default; the identity agent passes mappings
    over its changelog-backed table. Every changed profile is written back by assignment,
    so such a mapping sees each change."""

    def __init__(
        self,
        rails: GuardRails | None = None,
        *,
        owner: MutableMapping[str, str] | None = None,
        profiles: MutableMapping[str, Profile] | None = None,
    ) -> None:
        self.rails = rails or GuardRails()
        self.owner: MutableMapping[str, str] = {} if owner is None else owner
        self.profiles: MutableMapping[str, Profile] = {} if profiles is None else profiles
        self._created = 0  # creation order when the caller gives no position

    def resolve(
        self, identity: Mapping[str, str | None], event_id: str, *, position: int | None = None
    ) -> Resolution:
        """The customer of an event with these identifiers, linking and merging as needed.

        ``position`` orders profile creation (the identity agent passes the offset of the
        event in its single-partition input, so a replay orders profiles the same way)."""
        given = [(k, identity[k]) for k in IDENTITY_KINDS if identity.get(k)]
        if not given:
            raise ValueError("an event needs at least one identifier")
        keys = [identifier_key(kind, str(value)) for kind, value in given]
        found = {self.owner[k] for k in keys if k in self.owner}
        owners = sorted(
            (self.profiles[c] for c in found), key=lambda p: (not p.known, p.order, p.customer_id)
        )
        created = not owners
        profile = self._create(given, keys, position) if created else owners[0]
        merges, refusals = [], []
        for loser in owners[1:]:
            merged = self._merge(profile, loser, event_id)
            if isinstance(merged, Merge):
                merges.append(merged)
            else:
                refusals.append(merged)
        linked, refused = self._attach(profile, keys)
        if refused:
            refusals.append(
                Refusal(event_id, profile.customer_id, tuple(refused), "identifier limit")
            )
        if profile.known and profile.customer_id not in profile.identifiers["customer_id"]:
            renamed = self._rename(profile, event_id)
            if renamed is not None:
                profile = self.profiles[renamed.winner]
                merges.append(renamed)
        return Resolution(
            profile.customer_id, created, tuple(linked), tuple(merges), tuple(refusals)
        )

    def _create(
        self, given: list[tuple[str, str | None]], keys: list[str], position: int | None
    ) -> Profile:
        crm = dict(given).get("customer_id")
        customer_id = str(crm) if crm else generated_id(keys[0])
        while customer_id in self.profiles:  # an id taken by another profile's CRM id
            customer_id = generated_id(customer_id)
        if position is None:
            position = self._created
            self._created += 1
        profile = Profile(customer_id, position)
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
        if linked:
            self.profiles[profile.customer_id] = profile
        return linked, refused

    def _rename(self, profile: Profile, event_id: str) -> Merge | None:
        """A profile that just got its CRM ``customer_id`` takes it as its name."""
        (crm,) = profile.identifiers["customer_id"]
        if crm in self.profiles:
            return None  # the name is taken (a generated id equal to a CRM id): keep the old
        old = profile.customer_id
        moved = self._move_identifiers(profile, crm)
        del self.profiles[old]
        profile.customer_id = crm
        self.profiles[crm] = profile
        return Merge(crm, old, event_id, moved, "identified")

    def _move_identifiers(self, source: Profile, to: str) -> tuple[str, ...]:
        moved = []
        for kind, values in source.identifiers.items():
            for value in values:
                self.owner[f"{kind}:{value}"] = to
                moved.append(f"{kind}:{value}")
        return tuple(sorted(moved))

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
        moved = self._move_identifiers(loser, winner.customer_id)
        for kind, values in loser.identifiers.items():
            winner.identifiers.setdefault(kind, set()).update(values)
        del self.profiles[loser.customer_id]
        self.profiles[winner.customer_id] = winner
        return Merge(winner.customer_id, loser.customer_id, event_id, moved)
