"""Store episodes: visits, queues, sales, and returns within 30 days of a purchase."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.simulate import web
from services.simulate.people import Actor, Draft

REASONS = ("wrong size", "damaged", "changed mind", "not as described")


def _identity(a: Actor) -> dict[str, str]:
    assert a.loyalty_id is not None
    return {"loyalty_id": a.loyalty_id}


def _source(store: int) -> str:
    return f"pos-store-{store}"


def queue_wait(a: Actor, at: datetime, store: int) -> Draft:
    """A wait at the till: 600 seconds or more is long_queue (599 and 600 both occur)."""
    wait = a.rng.choices(
        (a.rng.randint(20, 500), 599, 600, a.rng.randint(601, 1500)), (80, 6, 6, 8)
    )[0]
    if wait >= 600:
        a.intend("long_queue")
    return a.add(
        "store.queue_wait",
        at,
        {"store_id": f"store-{store}", "wait_seconds": wait},
        _identity(a),
        _source(store),
    )


def sale(a: Actor, at: datetime, store: int) -> Draft:
    amount = round(a.rng.choice(web.PRODUCTS)[1] * a.rng.choice((1, 1, 2)), 2)
    return a.add(
        "store.pos_sale",
        at,
        {
            "store_id": f"store-{store}",
            "order_id": a.serial(f"pos-{store}"),
            "amount": amount,
            "currency": "EUR",
        },
        _identity(a),
        _source(store),
    )


def shop_on(a: Actor, day: int, *, buy: bool) -> Draft | None:
    """A visit to a store, sometimes a queue, a sale if ``buy``: the sale, if any."""
    store = a.home_store if a.rng.random() < 0.8 else a.rng.randint(1, 40)
    at = a.moment(day)
    a.add("store.visit", at, {"store_id": f"store-{store}"}, _identity(a), _source(store))
    if a.rng.random() < 0.35:
        at += timedelta(seconds=a.rng.randint(120, 900))
        at = queue_wait(a, at, store).at
    if not buy:
        return None
    return sale(a, at + timedelta(seconds=a.rng.randint(60, 600)), store)


def trip(a: Actor) -> None:
    day = a.timeline.place("store", [0])
    if day is not None:
        shop_on(a, day, buy=not a.no_purchases and a.rng.random() < 0.6)


def give_back(a: Actor) -> None:
    """A purchase (in a store, or online) and its return 2 to 25 days later: a store return
    or a refund from billing (return_after_purchase). The person buys nothing else."""
    gap = a.rng.randint(2, 25)
    day = a.timeline.place("return", [0, gap])
    if day is None:
        return
    a.no_purchases = True
    at = a.moment(day + gap)
    if a.rng.random() < 0.5:
        bought = shop_on(a, day, buy=True)
        assert bought is not None
        store = int(bought.attributes["store_id"].removeprefix("store-"))
        a.add(
            "store.return",
            at,
            {**bought.attributes, "reason": a.rng.choice(REASONS)},
            _identity(a),
            _source(store),
        )
    else:
        bought = web.buy_on(a, day)
        assert a.account_id is not None
        a.add(
            "billing.refund_issued",
            at,
            {
                "invoice_id": f"inv-{bought.attributes['order_id']}",
                "order_id": bought.attributes["order_id"],
                "amount": bought.attributes["amount"],
                "currency": "EUR",
            },
            {"account_id": a.account_id},
            "billing-core",
        )
    a.intend("return_after_purchase")
