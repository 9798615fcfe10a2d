"""What a person does over the scenario's days: which episodes, how often. Rates are per 30
days; friction episodes are rare so that friction stays a minority."""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from services.simulate import billing, store, support, web
from services.simulate.people import Actor

Episode = Callable[[Actor], None]

#: (episodes per person per 30 days, episode, whether it is a purchase), the ones that need
#: several days first, so that they find room.
KNOWN: tuple[tuple[float, Episode, bool], ...] = (
    (0.015, web.revisit, False),
    (0.04, support.repeat, False),
    (0.04, support.sla, False),
    (0.02, support.reopen, False),
    (0.8, billing.bill, False),
    (0.05, web.abandon, False),
    (0.06, web.form_errors, False),
    (0.03, billing.cancel, False),
    (0.3, support.ticket, False),
    (0.1, support.call, False),
    (0.15, support.survey, False),
    (0.5, web.purchase, True),
    (0.04, web.store_finish, True),
    (0.9, store.trip, False),
    (3.0, web.browse, False),
)
RETURNS = 0.03  # share of known people who buy once and give it back
STRETCHES = 0.5  # share of known people who browse anonymously on a new device, then log in
VISITS = 1.2  # extra sessions of an anonymous visitor
VISITOR_FORM_ERRORS = 0.04


def times(rng: Random, rate: float) -> int:
    """A whole number of episodes with ``rate`` as its mean."""
    whole = int(rate)
    return whole + (rng.random() < rate - whole)


def live_known(a: Actor, days: int) -> None:
    scale = days / 30
    first = web.onboard(a, latest=min(2, days - 1))
    if first is not None and a.rng.random() < STRETCHES:
        web.stretch(a, earliest=first + 1)
    if a.rng.random() < RETURNS * scale:
        store.give_back(a)  # the person then buys nothing else (a.no_purchases)
    for rate, episode, buys in KNOWN:
        if buys and a.no_purchases:
            continue
        for _ in range(times(a.rng, rate * scale)):
            episode(a)


def live_anonymous(a: Actor, days: int) -> None:
    scale = days / 30
    for _ in range(1 + times(a.rng, VISITS * scale)):
        web.visitor(a)
    if a.rng.random() < VISITOR_FORM_ERRORS * scale:
        web.form_errors(a, anonymous=True)
