"""Web episodes: browsing, anonymous visits that end in a login, purchases, abandoned
checkouts and form errors. Each takes its days on the person's calendar or does nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.simulate import support
from services.simulate.people import Actor, Draft

SOURCE = "web-shop"
SITE = "https://shop.example.com"
PRODUCTS = [
    (f"SKU-{kind}-{n}", price)
    for kind, base in (("BOOT", 89.0), ("SHIRT", 24.5), ("LAMP", 42.0), ("BAG", 59.9))
    for n, price in enumerate((base, base + 10, base * 2, base + 5.5), start=1)
]
QUERIES = ("waterproof boots", "linen shirt", "desk lamp", "travel bag", "gift", "sale")
PAGES = ("/", "/new", "/sale", "/help/delivery", "/account", "/stores")
FORMS = {
    "checkout-address": "postcode not recognised",
    "payment-card": "card number is invalid",
    "signup": "password too short",
}
CONSIDER = 0.15  # share of sessions that end on a product, not on another page
QUIET_DAY = 1  # a friction flag online keeps the next day free of unrelated tickets


class Visit:
    """One web session on one device: events a few seconds to minutes apart."""

    def __init__(
        self, actor: Actor, at: datetime, device: str, *, logged_in: bool, linkable: bool = True
    ) -> None:
        self.a = actor
        self.at = at
        self.device = device
        self.logged_in = logged_in and actor.customer_id is not None
        self.linkable = linkable
        self.session = actor.serial("sess")
        self.cart: list[tuple[str, float]] = []
        self._first = True

    def identity(self) -> dict[str, str]:
        if self.logged_in and self.a.customer_id is not None:
            return {"customer_id": self.a.customer_id, "anonymous_id": self.device}
        return {"anonymous_id": self.device}

    def emit(
        self, type_: str, attributes: dict[str, Any], gap: tuple[int, int] = (15, 120)
    ) -> Draft:
        if not self._first:
            self.at += timedelta(seconds=self.a.rng.randint(*gap))
        self._first = False
        return self.a.add(
            type_,
            self.at,
            {**attributes, "session_id": self.session},
            self.identity(),
            SOURCE,
            linkable=self.linkable,
        )

    def page(self, path: str | None = None) -> Draft:
        return self.emit("web.page_view", {"url": SITE + (path or self.a.rng.choice(PAGES))})

    def search(self) -> Draft:
        rng = self.a.rng
        return self.emit(
            "web.search", {"query": rng.choice(QUERIES), "results_count": rng.randint(0, 40)}
        )

    def product(self) -> Draft:
        sku, _ = self.a.rng.choice(PRODUCTS)
        return self.emit("web.product_view", {"sku": sku})

    def add_to_cart(self) -> Draft:
        sku, price = self.a.rng.choice(PRODUCTS)
        quantity = self.a.rng.choice((1, 1, 1, 2))
        self.cart.append((sku, price * quantity))
        return self.emit(
            "web.add_to_cart",
            {"sku": sku, "quantity": quantity, "unit_price": price, "currency": "EUR"},
        )

    def login(self, event: str = "web.login") -> Draft:
        """A login (or signup) names the person: it links this device and their email."""
        assert self.a.customer_id is not None
        assert self.a.email is not None
        self.logged_in, self.linkable = True, True
        attributes = {"method": "password"} if event == "web.login" else {}
        draft = self.emit(event, attributes)
        draft.identity = {
            "customer_id": self.a.customer_id,
            "email": self.a.email,
            "anonymous_id": self.device,
        }
        return draft

    def value(self) -> float:
        return round(sum(amount for _, amount in self.cart), 2) or 19.9

    def checkout(self) -> Draft:
        if not self.cart:
            self.add_to_cart()
        return self.emit("web.checkout_started", {"cart_value": self.value(), "currency": "EUR"})

    def complete(self, started: Draft, after: timedelta) -> Draft:
        self.at = started.at + after
        order = self.a.serial("ord")
        return self.emit(
            "web.checkout_completed",
            {"order_id": order, "amount": self.value(), "currency": "EUR"},
            gap=(0, 0),
        )

    def form_error(self, form: str, gap: tuple[int, int]) -> Draft:
        return self.emit("web.form_error", {"form": form, "error": FORMS[form]}, gap=gap)


def browse_in(visit: Visit, *, consider: bool) -> None:
    """Look around; stay considering a product, or wander off to another page."""
    rng = visit.a.rng
    visit.page("/")
    if rng.random() < 0.5:
        visit.search()
    for _ in range(rng.randint(1, 3)):
        visit.product()
    if rng.random() < 0.3:
        visit.add_to_cart()
    if not consider:
        visit.page()


def _visit(a: Actor, day: int, *, logged_in: float = 0.5) -> Visit:
    """A session on one of the devices the person has logged in on before ``day``."""
    devices = [device for device in a.devices if a.since.get(device, -1) < day]
    return Visit(a, a.moment(day), a.rng.choice(devices), logged_in=a.rng.random() < logged_in)


def onboard(a: Actor, latest: int) -> int | None:
    """The person's first web visit: a login (or a signup) on their first device."""
    day = a.timeline.place("onboard", [0], latest=latest)
    if day is None:
        return None
    visit = Visit(a, a.moment(day), a.devices[0], logged_in=False)
    visit.page("/")
    visit.login("web.signup" if a.rng.random() < 0.25 else "web.login")
    browse_in(visit, consider=a.rng.random() < CONSIDER)
    return day


def browse(a: Actor) -> None:
    day = a.timeline.place("browse", [0])
    if day is not None:
        browse_in(_visit(a, day), consider=a.rng.random() < CONSIDER)


def visitor(a: Actor) -> None:
    """A visitor nobody knows: one device, never logged in."""
    day = a.timeline.place("visitor", [0])
    if day is not None:
        visit = Visit(a, a.moment(day), a.devices[0], logged_in=False, linkable=False)
        browse_in(visit, consider=a.rng.random() < CONSIDER)


def stretch(a: Actor, earliest: int) -> None:
    """A new device, a short anonymous browse, then a login that says who it was."""
    day = a.timeline.place("stretch", [0], earliest=earliest)
    if day is None:
        return
    visit = Visit(a, a.moment(day), a.new_device(since=day), logged_in=False, linkable=False)
    visit.page("/")
    for _ in range(a.rng.randint(1, 3)):
        if a.rng.random() < 0.7:
            visit.product()
        else:
            visit.search()
    if a.rng.random() < 0.3:
        visit.add_to_cart()
    visit.login()
    if a.rng.random() < 0.5:
        visit.product()
    if a.rng.random() > CONSIDER:
        visit.page()


def purchase(a: Actor) -> None:
    """Browse, check out, pay within the 30 minutes (sometimes at minute 29)."""
    day = a.timeline.place("purchase", [0])
    if day is not None:
        buy_on(a, day)


def buy_on(a: Actor, day: int) -> Draft:
    visit = _visit(a, day, logged_in=1)
    browse_in(visit, consider=True)
    started = visit.checkout()
    minutes = 29 if a.rng.random() < 0.15 else a.rng.randint(2, 28)
    return visit.complete(started, timedelta(minutes=minutes, seconds=-a.rng.randint(0, 50)))


def abandon(a: Actor) -> None:
    """A checkout left unfinished: never paid, paid after 31+ minutes, or followed by a
    support ticket within 24 hours (digital_to_support)."""
    variant = a.rng.choices(("left", "late", "ticket"), (5, 2, 2))[0]
    if variant == "late" and a.no_purchases:
        variant = "left"
    ticket_day = a.rng.choice((0, QUIET_DAY))
    day = a.timeline.place(
        "abandon", [0, QUIET_DAY], tickets=[ticket_day] if variant == "ticket" else []
    )
    if day is None:
        return
    visit = _visit(a, day, logged_in=1)
    browse_in(visit, consider=True)
    started = visit.checkout()
    a.intend("checkout_abandoned")
    if variant == "late":
        visit.complete(started, timedelta(minutes=a.rng.choice((31, 31, 35, 44))))
    elif variant == "ticket":
        flagged = started.at + timedelta(minutes=30)
        support.follow_up(a, flagged, day + ticket_day, topic="checkout")


def store_finish(a: Actor) -> None:
    """A web checkout finished at the till within the 30 minutes: no abandonment."""
    day = a.timeline.place("store_finish", [0])
    if day is None:
        return
    visit = _visit(a, day, logged_in=1)
    browse_in(visit, consider=True)
    started = visit.checkout()
    minutes = 29 if a.rng.random() < 0.25 else a.rng.randint(8, 27)
    store = a.home_store
    a.add(
        "store.pos_sale",
        started.at + timedelta(minutes=minutes),
        {
            "store_id": f"store-{store}",
            "order_id": a.serial(f"pos-{store}"),
            "amount": visit.value(),
            "currency": "EUR",
        },
        _loyalty(a),
        f"pos-store-{store}",
    )


def form_errors(a: Actor, *, anonymous: bool = False) -> None:
    """Form errors in one session: a loop of three within 10 minutes, a near miss (two, or
    three over more than 10 minutes), or a loop followed by a support ticket."""
    variants = ("loop",) if anonymous else ("loop", "near", "ticket")
    variant = a.rng.choices(variants, (4, 3, 2)[: len(variants)])[0]
    ticket_day = a.rng.choice((0, QUIET_DAY))
    day = a.timeline.place(
        "form_errors",
        [0] if variant == "near" else [0, QUIET_DAY],
        tickets=[ticket_day] if variant == "ticket" else [],
    )
    if day is None:
        return
    visit = Visit(a, a.moment(day), a.devices[0], logged_in=not anonymous, linkable=not anonymous)
    form = a.rng.choice(list(FORMS))
    visit.page("/checkout" if form != "signup" else "/signup")
    first = visit.form_error(form, (20, 60))
    if variant == "near" and a.rng.random() < 0.5:
        visit.form_error(form, (30, 300))
    elif variant == "near":
        span = 601 if a.rng.random() < 0.4 else a.rng.randint(620, 900)
        visit.form_error(form, (60, span - 60))
        visit.at = first.at + timedelta(seconds=span)
        visit.form_error(form, (0, 0))
    else:
        span = 600 if a.rng.random() < 0.2 else a.rng.randint(40, 560)
        visit.form_error(form, (15, span - 15))
        visit.at = first.at + timedelta(seconds=span)
        third = visit.form_error(form, (0, 0))
        a.intend("form_error_loop")
        if variant == "ticket":
            support.follow_up(a, third.at, day + ticket_day, topic="website")
    if a.rng.random() < 0.5:
        visit.page()


def revisit(a: Actor) -> None:
    """Consider a product, come back exactly a minute before or after the 7-day budget."""
    day = a.timeline.place("revisit", list(range(8)))
    if day is None:
        return
    visit = _visit(a, day)
    visit.page("/")
    entered = visit.product()
    visit.add_to_cart()
    back = entered.at + timedelta(days=7, minutes=a.rng.choice((-1, 1)))
    later = Visit(a, back, visit.device, logged_in=visit.logged_in)
    later.page("/")
    later.product()


def _loyalty(a: Actor) -> dict[str, str]:
    assert a.loyalty_id is not None
    return {"loyalty_id": a.loyalty_id}
